//! What `mcpwatch-agent status` shows: the agent's identity, its last heartbeat and
//! report, and pending work, from the state dir.

use std::path::Path;

use super::Error;
use crate::state::StateDir;

/// What `status` shows. A state dir this user may not read (the service's, read as a
/// normal user) is one clear error saying to run it as root.
pub fn status(state_dir: &Path) -> Result<String, Error> {
    let denied = |e: &crate::state::Error| matches!(e, crate::state::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied);
    let needs_root = || Error::NeedsRoot(state_dir.to_path_buf());
    let dir =
        StateDir::open(state_dir).map_err(|e| if denied(&e) { needs_root() } else { e.into() })?;
    let s = dir
        .load()
        .map_err(|e| if denied(&e) { needs_root() } else { e.into() })?;
    let show =
        |v: Option<String>| v.map_or_else(|| "-".into(), |v| crate::printable::cell(&v, 400));
    let pending = dir.pending();
    Ok(format!(
        "agent id:          {}\ncollector:         {}\nenrolled:          {}\nkey revoked:       {}\nsigning:           {}\nlast heartbeat:    {}\nlast report:       {}\npending report:    {}\nrefused report:    {}\nwatched dirs:      {}\nlast error:        {}\n",
        show(s.agent_id.clone()),
        show(s.collector_url.clone()),
        if s.api_key.is_some() {
            "yes"
        } else if dir.enroll_secret().is_some() {
            "not yet: the service enrolls with the secret install kept, once it reaches the collector"
        } else {
            "no"
        },
        if s.revoked {
            "YES: re-enroll with `mcpwatch-agent enroll`"
        } else {
            "no"
        },
        if s.key_bound {
            "on"
        } else {
            "off (key not bound yet)"
        },
        show(s.last_heartbeat_at.map(|t| t.to_rfc3339())),
        show(s.last_report_at.map(|t| t.to_rfc3339())),
        pending.map_or_else(
            || "none".to_owned(),
            |p| format!(
                "yes ({} servers, sequence {})",
                p.servers.len(),
                p.sequence.unwrap_or(0)
            )
        ),
        show(
            s.refused_report
                .as_ref()
                .map(|r| format!("{} ({})", r.error, r.at.to_rfc3339()))
        ),
        s.watched_dirs,
        show(s.last_error),
    ))
}
