//! What `mcpwatch-agent status` shows: the agent's identity, its last heartbeat and
//! report, and pending work, from the state dir.

use std::path::Path;

use super::Error;
use crate::state::StateDir;

/// What `status` shows.
pub fn status(state_dir: &Path) -> Result<String, Error> {
    let dir = StateDir::open(state_dir)?;
    let s = dir.load()?;
    let show =
        |v: Option<String>| v.map_or_else(|| "-".into(), |v| crate::printable::cell(&v, 400));
    let pending = dir.pending();
    Ok(format!(
        "agent id:          {}\ncollector:         {}\nenrolled:          {}\nkey revoked:       {}\nsigning:           {}\nlast heartbeat:    {}\nlast report:       {}\npending report:    {}\nrefused report:    {}\nwatched dirs:      {}\nlast error:        {}\n",
        show(s.agent_id.clone()),
        show(s.collector_url.clone()),
        if s.api_key.is_some() { "yes" } else { "no" },
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
