//! Discovery tests over fixture trees.
