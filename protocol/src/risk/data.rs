//! Facts shipped in the binary and parsed once: known advisories in MCP packages
//! (`data/mcp-advisories.tsv`) and popular MCP servers with their capability
//! (`data/mcp-popular-servers.tsv`). Both come from `mcp-risk.md`'s research.

use std::sync::LazyLock;

use super::Severity;
use super::version::Ranges;

const ADVISORIES_TSV: &str = include_str!("../../data/mcp-advisories.tsv");
const POPULAR_TSV: &str = include_str!("../../data/mcp-popular-servers.tsv");

/// A known vulnerability (or malicious release) of a package.
#[derive(Debug, Clone)]
pub struct Advisory {
    /// `GHSA-...;CVE-...`
    pub ids: &'static str,
    pub package: &'static str,
    /// `package` as [`normalise_name`] compares it.
    pub normalised: String,
    /// `npm`, `pypi`, `go`, ... (lowercase).
    pub ecosystem: String,
    /// `None` when the source's range could not be read.
    pub affected: Option<Ranges>,
    pub fixed: &'static str,
    pub severity: Severity,
    /// A malicious release, not a bug.
    pub malicious: bool,
}

/// A popular MCP server and what it can do.
#[derive(Debug, Clone)]
pub struct Popular {
    /// Package name, image, or URL prefix for remote servers.
    pub name: &'static str,
    /// `npm`, `pypi`, `docker`, `remote`, `go`, ...
    pub ecosystem: String,
    pub official: bool,
    /// First word of the capability column: `filesystem`, `shell-exec`, ...
    pub category: &'static str,
    /// `name` as [`normalise_name`] compares it.
    pub normalised: String,
}

fn ecosystem(column: &str) -> String {
    let first = column
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_lowercase();
    match first.as_str() {
        "pypi" => "pypi".into(),
        other => other
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_owned(),
    }
}

fn first_word(column: &'static str) -> &'static str {
    column.split_whitespace().next().unwrap_or_default()
}

fn severity(column: &str) -> Severity {
    let upper = column.to_uppercase();
    if upper.starts_with("CRITICAL") {
        Severity::Critical
    } else if upper.starts_with("HIGH") {
        Severity::High
    } else if upper.starts_with("LOW") {
        Severity::Low
    } else {
        // MODERATE, MEDIUM, or not scored by the source.
        Severity::Medium
    }
}

/// Every advisory, parsed once.
pub static ADVISORIES: LazyLock<Vec<Advisory>> = LazyLock::new(|| {
    ADVISORIES_TSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&'static str> = line.split('\t').collect();
            let (ids, package, eco, range, fixed, sev) = (
                cols.first()?,
                cols.get(1)?,
                cols.get(2)?,
                cols.get(3)?,
                cols.get(4)?,
                cols.get(5)?,
            );
            let package = first_word(package);
            if package.is_empty() {
                return None;
            }
            // OSV's malicious-package ids (`MAL-...`); a summary that merely mentions "a
            // malicious server" describes an attack on the package, not the package.
            let malicious = ids.split(';').any(|id| id.trim().starts_with("MAL-"));
            let eco = ecosystem(eco);
            Some(Advisory {
                ids,
                package,
                normalised: normalise_name(&eco, package),
                ecosystem: eco,
                affected: Ranges::parse(range),
                fixed,
                severity: severity(sev),
                malicious,
            })
        })
        .collect()
});

/// Every popular server, parsed once.
pub static POPULAR: LazyLock<Vec<Popular>> = LazyLock::new(|| {
    POPULAR_TSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&'static str> = line.split('\t').collect();
            let (name, eco, official, capability) =
                (cols.first()?, cols.get(1)?, cols.get(2)?, cols.get(3)?);
            let name = first_word(name);
            let eco = ecosystem(eco);
            (!name.is_empty()).then(|| Popular {
                name,
                normalised: normalise_name(&eco, name),
                ecosystem: eco,
                official: official.trim() == "yes",
                category: first_word(capability),
            })
        })
        .collect()
});

/// PyPI treats `-`, `_` and `.` alike and ignores case.
pub fn normalise_name(ecosystem: &str, name: &str) -> String {
    if ecosystem == "pypi" {
        name.to_lowercase().replace(['_', '.'], "-")
    } else {
        name.to_lowercase()
    }
}

/// The advisories of a package.
pub fn advisories_for(ecosystem: &str, name: &str) -> Vec<&'static Advisory> {
    let wanted = normalise_name(ecosystem, name);
    ADVISORIES
        .iter()
        .filter(|a| a.ecosystem == ecosystem && a.normalised == wanted)
        .collect()
}

/// The popular entry for a package, or for a remote URL (matched by prefix).
pub fn popular_package(ecosystem: &str, name: &str) -> Option<&'static Popular> {
    let wanted = normalise_name(ecosystem, name);
    POPULAR
        .iter()
        .find(|p| p.ecosystem == ecosystem && p.normalised == wanted)
}

pub fn popular_remote(url: &str) -> Option<&'static Popular> {
    let url = url.to_lowercase();
    POPULAR
        .iter()
        .filter(|p| p.ecosystem == "remote")
        .find(|p| {
            url.trim_end_matches('/')
                .starts_with(p.name.trim_end_matches('/'))
        })
}

/// Optimal string alignment distance (edits, including swapping neighbours), or
/// `None` once it exceeds `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    if a.is_ascii() && b.is_ascii() {
        return distance_within(a.as_bytes(), b.as_bytes(), max);
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    distance_within(&a, &b, max)
}

/// [`edit_distance`] over any symbols: three rows kept and reused, and given up as
/// soon as no later row can come back under `max` (every cell of a row is at least
/// the smaller of the previous row's least and the one before's least plus one).
fn distance_within<T: PartialEq>(a: &[T], b: &[T], max: usize) -> Option<usize> {
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let width = b.len() + 1;
    let mut prev2 = vec![0usize; width];
    let mut prev: Vec<usize> = (0..width).collect();
    let mut cur = vec![0usize; width];
    let mut prev_least = 0;
    for i in 1..=a.len() {
        cur[0] = i;
        let mut least = i;
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut cell = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cell = cell.min(prev2[j - 2] + 1);
            }
            cur[j] = cell;
            least = least.min(cell);
        }
        if least > max && prev_least >= max {
            return None;
        }
        prev_least = least;
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

/// The popular package of the same ecosystem one or two edits away from `name`, when
/// `name` is not itself popular.
pub fn lookalike(ecosystem: &str, name: &str) -> Option<(&'static Popular, usize)> {
    if name.chars().count() < 6 || popular_package(ecosystem, name).is_some() {
        return None;
    }
    let wanted = normalise_name(ecosystem, name);
    let length = wanted.chars().count();
    POPULAR
        .iter()
        .filter(|p| p.ecosystem == ecosystem)
        // More than two characters longer or shorter is more than two edits.
        .filter(|p| p.normalised.chars().count().abs_diff(length) <= 2)
        .filter_map(|p| edit_distance(&wanted, &p.normalised, 2).map(|d| (p, d)))
        .filter(|(_, d)| *d > 0)
        .min_by_key(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load() {
        assert!(ADVISORIES.len() > 60, "{}", ADVISORIES.len());
        assert!(POPULAR.len() > 120, "{}", POPULAR.len());
        let remote = advisories_for("npm", "mcp-remote");
        assert!(remote.len() >= 3);
        assert!(
            remote
                .iter()
                .any(|a| a.severity == Severity::Critical && a.affected.is_some())
        );
        assert!(ADVISORIES.iter().any(|a| a.malicious));
        let fs = popular_package("npm", "@modelcontextprotocol/server-filesystem").unwrap();
        assert_eq!(fs.category, "filesystem");
        assert!(fs.official);
        assert_eq!(
            popular_package("pypi", "MCP_Server_Fetch")
                .unwrap()
                .category,
            "web-fetch"
        );
        assert_eq!(
            popular_remote("https://mcp.stripe.com/v1")
                .unwrap()
                .category,
            "payments-finance"
        );
    }

    #[test]
    fn edit_distance_agrees_with_the_whole_table() {
        // The full optimal-string-alignment table, no early exit.
        fn full(a: &[u8], b: &[u8]) -> usize {
            let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for (i, row) in d.iter_mut().enumerate() {
                row[0] = i;
            }
            for (j, cell) in d[0].iter_mut().enumerate() {
                *cell = j;
            }
            for i in 1..=a.len() {
                for j in 1..=b.len() {
                    let cost = usize::from(a[i - 1] != b[j - 1]);
                    d[i][j] = (d[i - 1][j] + 1)
                        .min(d[i][j - 1] + 1)
                        .min(d[i - 1][j - 1] + cost);
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                    }
                }
            }
            d[a.len()][b.len()]
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut word = |n: u64| -> String {
                (0..next() % n)
                    .map(|_| char::from(b'a' + (next() % 3) as u8))
                    .collect()
            };
            let (a, b) = (word(9), word(9));
            for max in 0..4 {
                let d = full(a.as_bytes(), b.as_bytes());
                assert_eq!(
                    edit_distance(&a, &b, max),
                    (d <= max).then_some(d),
                    "{a} {b} {max}"
                );
            }
        }
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("kitten", "sitting", 5), Some(3));
        assert_eq!(edit_distance("mcp-remote", "mcp-remtoe", 2), Some(1));
        assert_eq!(edit_distance("abc", "abcdef", 2), None);
        assert_eq!(edit_distance("ab", "ba", 1), Some(1));
        assert_eq!(edit_distance("café-mcp", "cafe-mcp", 2), Some(1));
        assert_eq!(edit_distance("", "ab", 2), Some(2));
        // Given up early: far apart from the first letters on.
        assert_eq!(edit_distance("zzzzzzzzzzzz", "aaaaaaaaaaaa", 2), None);
        assert_eq!(
            lookalike("npm", "mcp-remtoe").map(|(p, d)| (p.name, d)),
            Some(("mcp-remote", 1))
        );
        assert!(lookalike("npm", "@modelcontextprotocol/server-filesystem").is_none());
        assert!(lookalike("npm", "totally-different-server").is_none());
    }
}
