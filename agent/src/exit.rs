//! The exit-code policy, for `main` and the Windows service alike: 0 when the agent
//! did what it was asked; 78 (`EX_CONFIG`) when restarting cannot help until someone
//! acts (not enrolled, key revoked, enrollment refused, settings that cannot be used),
//! which the service units do not restart on; 1 for anything else, which they restart
//! after a pause.

/// Restarting cannot help: the systemd unit's `RestartPreventExitStatus` and the
/// launchd plist name it.
pub const DO_NOT_RESTART: u8 = 78;
/// Anything else: the service manager may restart the agent.
pub const FAILURE: u8 = 1;

/// The exit code for an error that stopped the agent.
pub fn code(err: &anyhow::Error) -> u8 {
    use crate::daemon::Error as Daemon;
    let needs_someone = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<Daemon>(),
            Some(Daemon::NotEnrolled | Daemon::Revoked | Daemon::Enroll(_))
        ) || cause.downcast_ref::<crate::config::Error>().is_some()
    });
    if needs_someone {
        DO_NOT_RESTART
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn only_what_someone_must_fix_stops_restarts() {
        let cases: Vec<(anyhow::Error, u8)> = vec![
            (crate::daemon::Error::NotEnrolled.into(), DO_NOT_RESTART),
            (crate::daemon::Error::Revoked.into(), DO_NOT_RESTART),
            (
                crate::daemon::Error::Enroll(crate::enroll::Error::SecretRefused).into(),
                DO_NOT_RESTART,
            ),
            (
                config::Error::Empty {
                    key: "collector_url",
                    from: config::Source::File,
                }
                .into(),
                DO_NOT_RESTART,
            ),
            (
                anyhow::Error::from(crate::daemon::Error::NotEnrolled)
                    .context("starting the agent"),
                DO_NOT_RESTART,
            ),
            (
                crate::daemon::Error::Upload(crate::upload::Error::Setup("no TLS".into())).into(),
                FAILURE,
            ),
            (anyhow::anyhow!("disk on fire"), FAILURE),
        ];
        for (err, expected) in cases {
            assert_eq!(code(&err), expected, "{err:#}");
        }
    }
}
