//! Conformance story for any [`Store`]: run against redb in a temp dir.
