//! Risk levels and finding severities, and how a 0–100 score maps to a level.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A server's overall risk level, derived from its score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Score below 30.
    Low,
    /// Score 30–59.
    Medium,
    /// Score 60–79.
    High,
    /// Score 80 and above.
    Critical,
}

impl RiskLevel {
    /// Every level, most severe first.
    pub const ALL: [RiskLevel; 4] = [Self::Critical, Self::High, Self::Medium, Self::Low];

    /// The level a score falls into: critical ≥ 80, high ≥ 60, medium ≥ 30, else low.
    pub fn from_score(score: u8) -> Self {
        match score {
            80.. => Self::Critical,
            60..=79 => Self::High,
            30..=59 => Self::Medium,
            _ => Self::Low,
        }
    }

    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// A small number, most severe first (critical = 0), used to order storage keys.
    pub fn rank(self) -> u8 {
        match self {
            Self::Critical => 0,
            Self::High => 1,
            Self::Medium => 2,
            Self::Low => 3,
        }
    }

    /// The inverse of [`Self::rank`].
    pub fn from_rank(rank: u8) -> Option<Self> {
        Self::ALL.get(usize::from(rank)).copied()
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a string that names no level.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown risk level {0:?}, expected one of critical, high, medium, low")]
pub struct UnknownLevel(pub String);

impl FromStr for RiskLevel {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            other => Err(UnknownLevel(other.to_owned())),
        }
    }
}

/// How serious one finding is on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Context, not a risk by itself.
    Info,
    /// Worth knowing.
    Low,
    /// Worth reviewing.
    Medium,
    /// Should be fixed.
    High,
    /// Must be fixed; forces the server's level to critical.
    Critical,
}

impl Severity {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// One step less serious (`info` stays `info`).
    pub fn lower(self) -> Self {
        match self {
            Self::Critical => Self::High,
            Self::High => Self::Medium,
            Self::Medium => Self::Low,
            Self::Low | Self::Info => Self::Info,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_boundaries_map_to_levels() {
        for (score, level) in [
            (0, RiskLevel::Low),
            (29, RiskLevel::Low),
            (30, RiskLevel::Medium),
            (59, RiskLevel::Medium),
            (60, RiskLevel::High),
            (79, RiskLevel::High),
            (80, RiskLevel::Critical),
            (100, RiskLevel::Critical),
        ] {
            assert_eq!(RiskLevel::from_score(score), level, "{score}");
        }
    }

    #[test]
    fn levels_parse_and_rank_round_trip() {
        for level in RiskLevel::ALL {
            assert_eq!(level.as_str().parse::<RiskLevel>().unwrap(), level);
            assert_eq!(RiskLevel::from_rank(level.rank()), Some(level));
        }
        assert!("severe".parse::<RiskLevel>().is_err());
        assert!("High".parse::<RiskLevel>().is_err());
        assert_eq!(RiskLevel::from_rank(4), None);
    }
}
