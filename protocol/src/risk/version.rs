//! Package versions and the affected ranges of advisories: `1.2.3`, `2025.8.21`,
//! `v0.9.0`, `1.0.0-beta.1`; ranges such as `>=0.0.5 <0.1.16`, `<0.14.1`, `2.14.0`,
//! `1.0.0-2.0.0`, `through 2026.10.19`, `all versions`, alternatives joined by `;`,
//! `/`, `or` or `||`. A range this module cannot read is `None`: never guessed.

use std::cmp::Ordering;

/// A version: its numeric parts and whether it is a pre-release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    parts: Vec<u64>,
    pre: bool,
}

impl Version {
    /// Parse `1.2.3`, `v1.2`, `1.0.0-beta.1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim().trim_start_matches(['v', 'V']);
        let (core, pre) = match t.split_once(['-', '+']) {
            Some((core, rest)) => (core, !rest.is_empty() && !t[core.len()..].starts_with('+')),
            None => (t, false),
        };
        let parts: Option<Vec<u64>> = core.split('.').map(|p| p.parse::<u64>().ok()).collect();
        let parts = parts.filter(|p| !p.is_empty() && p.len() <= 6)?;
        Some(Self { parts, pre })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let (a, b) = (
                self.parts.get(i).copied().unwrap_or(0),
                other.parts.get(i).copied().unwrap_or(0),
            );
            match a.cmp(&b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        // 1.0.0-beta < 1.0.0
        other.pre.cmp(&self.pre)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

/// One condition on a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comparator(Op, Version);

impl Comparator {
    fn holds(&self, v: &Version) -> bool {
        let o = v.cmp(&self.1);
        match self.0 {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Eq => o == Ordering::Equal,
        }
    }
}

/// Alternatives, each a conjunction of comparators (an empty one matches everything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranges(Vec<Vec<Comparator>>);

impl Ranges {
    /// Parse an advisory's affected range; `None` when no alternative can be read.
    pub fn parse(text: &str) -> Option<Self> {
        let mut unified = text.to_lowercase();
        for sep in [" or ", "||", ";", " / ", ",", " and "] {
            unified = unified.replace(sep, "|");
        }
        let alternatives: Vec<Vec<Comparator>> =
            unified.split('|').filter_map(alternative).collect();
        (!alternatives.is_empty()).then_some(Self(alternatives))
    }

    /// Whether `version` is in any alternative.
    pub fn contains(&self, version: &Version) -> bool {
        self.0
            .iter()
            .any(|all| all.iter().all(|c| c.holds(version)))
    }
}

fn alternative(text: &str) -> Option<Vec<Comparator>> {
    // Drop notes in parentheses: `<0.6.4 (semver line)`.
    let mut t = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => t.push(c),
            _ => {}
        }
    }
    let mut t = t.trim();
    // "date versions ..." speaks of the year-numbered releases only (2025.8.21), which
    // sort above every semver release (2.0.1): keep it to that line.
    let date_line = t.starts_with("date versions ");
    for noise in ["date versions ", "versions "] {
        t = t.strip_prefix(noise).unwrap_or(t).trim();
    }
    if t.is_empty() {
        return None;
    }
    if date_line {
        let mut conditions = alternative(t)?;
        conditions.push(Comparator(
            Op::Ge,
            Version {
                parts: vec![2000],
                pre: false,
            },
        ));
        return Some(conditions);
    }
    if t.starts_with("all versions") {
        return Some(Vec::new());
    }
    if let Some(v) = t.strip_prefix("through ") {
        return Some(vec![Comparator(Op::Le, Version::parse(v)?)]);
    }
    // `1.0.0-2.0.0` or `1.0.0 - 2.0.0` (the right side must look like a version, so
    // that a pre-release such as `1.0.0-beta.1` is not read as a range).
    let hyphen = t.split_once(" - ").or_else(|| t.split_once('-'));
    if let Some((a, b)) = hyphen
        && b.contains('.')
        && let (Some(lo), Some(hi)) = (Version::parse(a), Version::parse(b))
    {
        return Some(vec![Comparator(Op::Ge, lo), Comparator(Op::Le, hi)]);
    }
    let mut out = Vec::new();
    for token in t.split_whitespace() {
        let (op, rest) = if let Some(r) = token.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = token.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = token.strip_prefix('>') {
            (Op::Gt, r)
        } else if let Some(r) = token.strip_prefix('<') {
            (Op::Lt, r)
        } else if let Some(r) = token.strip_prefix('=') {
            (Op::Eq, r)
        } else {
            (Op::Eq, token)
        };
        out.push(Comparator(op, Version::parse(rest)?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_order_numerically_with_prereleases_first() {
        assert!(v("0.1.9") < v("0.1.16"));
        assert!(v("2025.8.21") > v("2025.7.1"));
        assert!(v("1.0.0-beta.1") < v("1.0.0"));
        assert_eq!(v("v1.2").cmp(&v("1.2.0")), Ordering::Equal);
        for bad in ["latest", "", "1.x", "abc", "^1.2.3"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn advisory_ranges_match() {
        let cases: &[(&str, &[(&str, bool)])] = &[
            (
                ">=0.0.5 <0.1.16",
                &[
                    ("0.0.4", false),
                    ("0.0.5", true),
                    ("0.1.15", true),
                    ("0.1.16", false),
                ],
            ),
            ("<0.14.1", &[("0.14.0", true), ("0.14.1", false)]),
            ("2.14.0", &[("2.14.0", true), ("2.14.1", false)]),
            (
                "<0.6.4 (semver line) / <2025.7.1 (date-version line)",
                &[("0.6.3", true), ("2025.1.1", true), ("2025.7.1", false)],
            ),
            (
                "through 2026.10.19",
                &[("2026.10.19", true), ("2026.10.20", false)],
            ),
            (
                ">=1.8.0 <1.30.0; 2.x <2.2.0",
                &[("1.9.0", true), ("1.30.0", false)],
            ),
            ("1.0.0-2.0.0", &[("1.5.0", true), ("2.0.1", false)]),
            (
                "1.0.0-2.0.0 and date versions through 2026.8.31",
                &[
                    ("1.5.0", true),
                    ("2025.8.21", true),
                    ("2.0.1", false),
                    ("2026.9.1", false),
                ],
            ),
            (
                "1.0.0-2.0.0 and date versions 2025.9.24-2026.8.31",
                &[("2025.10.1", true), ("2025.9.1", false)],
            ),
            (
                "all versions (introduced 0; CNA lists 1.3.0)",
                &[("9.9.9", true)],
            ),
        ];
        for (text, checks) in cases {
            let ranges = Ranges::parse(text).unwrap_or_else(|| panic!("{text}"));
            for (version, expected) in *checks {
                assert_eq!(
                    ranges.contains(&v(version)),
                    *expected,
                    "{text} vs {version}"
                );
            }
        }
        for unreadable in [
            "not captured",
            "see advisory (range truncated in source)",
            "commit 72cae181 (range not stated)",
        ] {
            assert!(Ranges::parse(unreadable).is_none(), "{unreadable}");
        }
    }
}
