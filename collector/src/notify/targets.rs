//! Where a channel may send: each kind's target parsed and checked, and the outbound
//! address policy (SSRF). Loopback, private, link-local, shared, multicast and cloud
//! metadata addresses are refused unless the collector runs with
//! `--allow-private-targets`; the check is made when a channel is saved and again on
//! the addresses a name resolves to at every send (DNS may change in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;

/// A target that cannot be used, said so that an admin can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "{host} is a loopback, private, link-local or metadata address ({addr}); the collector refuses such targets unless it runs with --allow-private-targets"
    )]
    Private { host: String, addr: IpAddr },
    #[error("{0} does not resolve to any address")]
    Unresolved(String),
}

/// Whether an address is one a channel may not reach without the operator's consent:
/// anything but a public unicast address.
pub fn is_private(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS metadata (IPv6)
                || (first == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 of an IPv4
                || (first == 0x2002) // 6to4, embeds an IPv4 address
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local() // 169.254/16: cloud metadata lives here
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// The outbound address policy of this collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub allow_private: bool,
}

impl Policy {
    /// Refuse `addr` (reached through `host`) if the policy does not allow it.
    pub fn check(self, host: &str, addr: IpAddr) -> Result<(), TargetError> {
        if !self.allow_private && is_private(addr) {
            return Err(TargetError::Private {
                host: host.to_owned(),
                addr,
            });
        }
        Ok(())
    }

    /// Resolve `host:port` and check every address it answers (all of them, so that a
    /// name with one public and one private address is refused).
    pub async fn resolve(self, host: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check(host, ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| TargetError::Unresolved(host.to_owned()))?
            .collect();
        if addrs.is_empty() {
            return Err(TargetError::Unresolved(host.to_owned()));
        }
        for addr in &addrs {
            self.check(host, addr.ip())?;
        }
        Ok(addrs)
    }
}

/// The resolver the HTTP client uses: every name is resolved and checked against the
/// policy at connect time, so what is checked is what is connected to.
pub struct CheckedResolver(pub Policy);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy.resolve(&host, 0).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver, shared.
pub fn resolver(policy: Policy) -> Arc<CheckedResolver> {
    Arc::new(CheckedResolver(policy))
}

/// A webhook or Slack target: `https://`, or `http://` to a private or loopback
/// address (which the policy must then allow). No user and password in the URL.
pub async fn http_target(raw: &str, policy: Policy) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| TargetError::Invalid(format!("target is not a URL: {e}")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| TargetError::Invalid("target URL has no host".into()))?
        .to_owned();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Invalid(
            "target URL must not carry a user or password; put credentials in the path or use a webhook secret".into(),
        ));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    match url.scheme() {
        "https" => {
            policy.resolve(&host, port).await?;
        }
        "http" => {
            let addrs = policy.resolve(&host, port).await?;
            if !addrs.iter().all(|a| is_private(a.ip())) {
                return Err(TargetError::Invalid(
                    "target must be an https:// URL (http:// only to a private or loopback address)"
                        .into(),
                ));
            }
        }
        other => {
            return Err(TargetError::Invalid(format!(
                "target must be an https:// URL, not {other}://"
            )));
        }
    }
    Ok(url)
}

/// How a syslog receiver is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyslogTransport {
    Udp,
    Tcp,
    Tls,
}

/// A syslog target: `udp://host:port`, `tcp://host:port` or `tls://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogTarget {
    pub transport: SyslogTransport,
    pub host: String,
    pub port: u16,
}

/// Parse (without resolving) a syslog target.
pub fn syslog_target(raw: &str) -> Result<SyslogTarget, TargetError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| TargetError::Invalid(format!("target is not a syslog URL: {e}")))?;
    let transport = match url.scheme() {
        "udp" => SyslogTransport::Udp,
        "tcp" => SyslogTransport::Tcp,
        "tls" => SyslogTransport::Tls,
        other => {
            return Err(TargetError::Invalid(format!(
                "syslog target must be udp://host:port, tcp://host:port or tls://host:port, not {other}://"
            )));
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| TargetError::Invalid("syslog target has no host".into()))?;
    let port = url
        .port()
        .ok_or_else(|| TargetError::Invalid("syslog target needs a port (e.g. :514)".into()))?;
    if url.path().len() > 1 || url.query().is_some() || !url.username().is_empty() {
        return Err(TargetError::Invalid(
            "syslog target is only scheme://host:port".into(),
        ));
    }
    Ok(SyslogTarget {
        transport,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    })
}

/// The longest list of email recipients one channel takes.
pub const MAX_RECIPIENTS: usize = 20;

/// An email target: one address or several, separated by commas.
pub fn email_targets(raw: &str) -> Result<Vec<lettre::Address>, TargetError> {
    let list: Vec<&str> = raw
        .split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if list.is_empty() {
        return Err(TargetError::Invalid(
            "target must be one email address or several, separated by commas".into(),
        ));
    }
    if list.len() > MAX_RECIPIENTS {
        return Err(TargetError::Invalid(format!(
            "target lists {} addresses; at most {MAX_RECIPIENTS}",
            list.len()
        )));
    }
    list.into_iter()
        .map(|a| {
            a.parse::<lettre::Address>().map_err(|_| {
                TargetError::Invalid(format!(
                    "{:?} is not an email address",
                    a.escape_default().to_string()
                ))
            })
        })
        .collect()
}

/// What a target may show after it was saved: the scheme and host of a URL (its path
/// and query often hold a token: Slack, Teams and Discord URLs do), the whole of an
/// email or syslog target.
pub fn redacted(kind_is_url: bool, target: &str) -> String {
    if !kind_is_url {
        return target.to_owned();
    }
    match Url::parse(target) {
        Ok(url) => {
            let host = url.host_str().unwrap_or_default();
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}/…", url.scheme())
        }
        Err(_) => "…".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Policy = Policy {
        allow_private: false,
    };
    const LAX: Policy = Policy {
        allow_private: true,
    };

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_private() {
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(is_private(addr.parse().unwrap()), "{addr}");
        }
        for addr in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(addr.parse().unwrap()), "{addr}");
        }
    }

    #[tokio::test]
    async fn http_targets_need_https_or_an_allowed_private_address() {
        assert!(http_target("https://1.1.1.1/hook", STRICT).await.is_ok());
        assert!(matches!(
            http_target("https://127.0.0.1/hook", STRICT).await,
            Err(TargetError::Private { .. })
        ));
        assert!(matches!(
            http_target("http://localhost:9/hook", STRICT).await,
            Err(TargetError::Private { .. })
        ));
        assert!(matches!(
            http_target("http://[::ffff:10.0.0.1]/", STRICT).await,
            Err(TargetError::Private { .. })
        ));
        assert!(http_target("http://127.0.0.1:9/hook", LAX).await.is_ok());
        // Plain http to a public address is refused even with the flag.
        assert!(matches!(
            http_target("http://1.1.1.1/hook", LAX).await,
            Err(TargetError::Invalid(_))
        ));
        for bad in [
            "ftp://example.com/",
            "not a url",
            "https://user:pw@1.1.1.1/",
            "file:///etc/passwd",
        ] {
            assert!(
                matches!(http_target(bad, LAX).await, Err(TargetError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn syslog_targets_name_a_transport_host_and_port() {
        let t = syslog_target("tcp://siem.example:6514").unwrap();
        assert_eq!(t.transport, SyslogTransport::Tcp);
        assert_eq!((t.host.as_str(), t.port), ("siem.example", 6514));
        assert_eq!(
            syslog_target("tls://[::1]:6514").unwrap().host,
            "::1".to_owned()
        );
        for bad in [
            "syslog://h:514",
            "udp://h",
            "tcp://h:514/path",
            "tcp://:514",
            "h:514",
        ] {
            assert!(syslog_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn email_targets_are_addresses() {
        assert_eq!(email_targets("a@x.example, b@y.example").unwrap().len(), 2);
        assert!(email_targets("").is_err());
        assert!(email_targets("not-an-address").is_err());
        assert!(email_targets("a@x.example\r\nBcc: evil@x.example").is_err());
    }

    #[test]
    fn redacted_urls_keep_only_scheme_and_host() {
        assert_eq!(
            redacted(true, "https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redacted(true, "http://127.0.0.1:8080/hook?token=x"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(redacted(false, "tcp://siem:514"), "tcp://siem:514");
    }
}
