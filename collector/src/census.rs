//! The fleet census: what runs where. Each active server counts in up to three groups
//! (its package, its remote URL, its name), and for each the census keeps how many
//! servers, hosts, users, clients and distinct launches there are, the versions with
//! their hosts, the highest risk, and when it was first and last seen. The store keeps
//! these counts at write time from the [`marks`] each server leaves, so a census page
//! costs the same at a million servers as at ten.

use chrono::{DateTime, Utc};
use mcpwatch_protocol::risk::RiskLevel;
use serde::{Deserialize, Serialize};

use crate::model::{Server, ServerStatus};

/// What the census groups servers by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// The package (or image) a server launches, per ecosystem.
    Package,
    /// A remote server's URL (scheme, host and path).
    Url,
    /// The name the client's config gives the server.
    ServerName,
}

impl Group {
    pub const ALL: [Group; 3] = [Self::Package, Self::Url, Self::ServerName];

    /// A stable byte for storage keys.
    pub fn code(self) -> u8 {
        match self {
            Self::Package => 1,
            Self::Url => 2,
            Self::ServerName => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Package => "package",
            Self::Url => "url",
            Self::ServerName => "server_name",
        }
    }
}

/// What one server adds to one census row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub group: Group,
    /// The row's key (a package name, a URL, a server name).
    pub key: String,
    /// The package's ecosystem (package rows).
    pub ecosystem: Option<String>,
    /// The host: the agent's id.
    pub agent: [u8; 16],
    /// The OS user on that host.
    pub user: Option<String>,
    pub client: Option<String>,
    /// The pinned version (package rows).
    pub version: Option<String>,
    /// What the server launches.
    pub fingerprint: String,
    pub level: RiskLevel,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

impl Mark {
    /// Whether two marks count the same (their times aside).
    pub fn same_counts(&self, other: &Mark) -> bool {
        Mark {
            first_seen_at: other.first_seen_at,
            last_seen_at: other.last_seen_at,
            ..self.clone()
        } == *other
    }
}

/// A remote URL as the census groups it: scheme, host, port and path (no user, query
/// or fragment).
fn url_key(raw: &str) -> Option<String> {
    let url = reqwest::Url::parse(raw).ok()?;
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}{}", url.scheme(), url.path()))
}

/// The marks a server leaves: none unless it is active.
pub fn marks(server: &Server) -> Vec<Mark> {
    if server.status != ServerStatus::Active {
        return Vec::new();
    }
    let r = &server.record;
    let mark = |group, key: String, ecosystem: Option<String>, version: Option<String>| Mark {
        group,
        key,
        ecosystem,
        agent: server.agent_id.to_bytes(),
        user: r.os_user.clone(),
        client: r.client.clone(),
        version,
        fingerprint: server.fingerprint.clone(),
        level: server.risk_level,
        first_seen_at: server.first_seen_at,
        last_seen_at: server.last_seen_at,
    };
    let mut out = vec![mark(Group::ServerName, r.server_name.clone(), None, None)];
    if let Some(p) = &r.package {
        out.push(mark(
            Group::Package,
            p.name.clone(),
            Some(p.ecosystem.clone()),
            p.version.clone(),
        ));
    }
    if let Some(url) = r.url.as_deref().and_then(url_key) {
        out.push(mark(Group::Url, url, None, None));
    }
    out
}

/// The counts of one census row, as stored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub key: String,
    pub ecosystem: Option<String>,
    pub servers: u64,
    pub hosts: u64,
    pub users: u64,
    pub clients: u64,
    pub launches: u64,
    /// Servers by level: low, medium, high, critical.
    pub levels: [u64; 4],
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Where a level is counted in [`Counts::levels`].
pub fn level_index(level: RiskLevel) -> usize {
    match level {
        RiskLevel::Low => 0,
        RiskLevel::Medium => 1,
        RiskLevel::High => 2,
        RiskLevel::Critical => 3,
    }
}

impl Counts {
    /// The highest level a server of the row has.
    pub fn max_level(&self) -> Option<RiskLevel> {
        [
            RiskLevel::Low,
            RiskLevel::Medium,
            RiskLevel::High,
            RiskLevel::Critical,
        ]
        .into_iter()
        .rev()
        .find(|l| self.levels[level_index(*l)] > 0)
    }

    /// Apply one write's net changes to the row of `mark`: servers and levels counted
    /// in or out, the distinct members that appeared or went (`counters`: hosts, users,
    /// clients, launches), and, when `seen`, the mark's sighting times.
    pub fn apply(
        &mut self,
        mark: &Mark,
        servers: i64,
        levels: [i64; 4],
        counters: [i64; 4],
        seen: bool,
    ) {
        self.key.clone_from(&mark.key);
        self.ecosystem.clone_from(&mark.ecosystem);
        self.servers = self.servers.saturating_add_signed(servers);
        for (count, delta) in self.levels.iter_mut().zip(levels) {
            *count = count.saturating_add_signed(delta);
        }
        for (count, delta) in [
            &mut self.hosts,
            &mut self.users,
            &mut self.clients,
            &mut self.launches,
        ]
        .into_iter()
        .zip(counters)
        {
            *count = count.saturating_add_signed(delta);
        }
        if seen {
            self.first_seen_at = Some(
                self.first_seen_at
                    .map_or(mark.first_seen_at, |t| t.min(mark.first_seen_at)),
            );
            self.last_seen_at = Some(
                self.last_seen_at
                    .map_or(mark.last_seen_at, |t| t.max(mark.last_seen_at)),
            );
        }
    }
}

/// The distinct members a row counts, and how a member is named in storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Host,
    User,
    Client,
    Launch,
    /// A version on a host (counts the version's hosts).
    VersionHost,
}

impl Member {
    pub fn code(self) -> u8 {
        match self {
            Self::Host => b'a',
            Self::User => b'u',
            Self::Client => b'c',
            Self::Launch => b'f',
            Self::VersionHost => b'v',
        }
    }

    /// The member's bytes for `mark` (`None`: the mark has none of this kind).
    pub fn of(self, mark: &Mark) -> Option<Vec<u8>> {
        match self {
            Self::Host => Some(mark.agent.to_vec()),
            // A user is a user on a host: alice on two laptops is two users.
            Self::User => mark
                .user
                .as_ref()
                .map(|u| [mark.agent.as_slice(), u.as_bytes()].concat()),
            Self::Client => mark.client.as_ref().map(|c| c.as_bytes().to_vec()),
            Self::Launch => Some(mark.fingerprint.as_bytes().to_vec()),
            Self::VersionHost => mark
                .version
                .as_ref()
                .map(|v| [v.as_bytes(), &[0], mark.agent.as_slice()].concat()),
        }
    }

    /// Which of a row's counters (hosts, users, clients, launches) this kind moves.
    pub fn counter_index(self) -> Option<usize> {
        match self {
            Self::Host => Some(0),
            Self::User => Some(1),
            Self::Client => Some(2),
            Self::Launch => Some(3),
            Self::VersionHost => None,
        }
    }

    pub const ALL: [Member; 5] = [
        Self::Host,
        Self::User,
        Self::Client,
        Self::Launch,
        Self::VersionHost,
    ];
}

/// A census row as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Row {
    pub key: String,
    pub ecosystem: Option<String>,
    pub servers: u64,
    pub hosts: u64,
    pub users: u64,
    pub clients: u64,
    pub versions: Vec<VersionHosts>,
    /// Distinct launches (fingerprints): more than one for a name means the same name
    /// runs different things on different hosts.
    pub launches: u64,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub max_risk_level: Option<RiskLevel>,
    /// The organisation's policy approves it.
    pub approved: bool,
    /// The organisation's policy blocks it.
    pub blocked: bool,
}

/// How many hosts run one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VersionHosts {
    pub version: String,
    pub hosts: u64,
}

/// The row of `counts` with its versions, judged by the policy.
pub fn row(counts: Counts, versions: Vec<VersionHosts>, policy: &crate::model::OrgPolicy) -> Row {
    let listed = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(&counts.key));
    Row {
        approved: listed(&policy.approved),
        blocked: listed(&policy.scoring.blocked),
        max_risk_level: counts.max_level(),
        key: counts.key,
        ecosystem: counts.ecosystem,
        servers: counts.servers,
        hosts: counts.hosts,
        users: counts.users,
        clients: counts.clients,
        versions,
        launches: counts.launches,
        first_seen_at: counts.first_seen_at,
        last_seen_at: counts.last_seen_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_grouped_without_user_query_or_fragment() {
        assert_eq!(
            url_key("https://u@mcp.example.com:8443/sse?token=[REDACTED]#x").as_deref(),
            Some("https://mcp.example.com:8443/sse")
        );
        assert_eq!(url_key("not a url"), None);
    }
}
