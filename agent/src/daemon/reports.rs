//! Sending the spooled report: accepted, refused for good (never resent until the
//! inventory changes), too large (sent smaller), or not delivered (kept and retried).

use chrono::Utc;
use tokio::time::Instant;

use super::{Daemon, Error};
use crate::{inventory, upload};

impl Daemon {
    /// Send the spooled report, if any.
    pub(super) async fn send_pending(&mut self) -> Result<(), Error> {
        self.retry_report_at = None;
        let Some(report) = self.dir.pending() else {
            return Ok(());
        };
        match self.client.report(&report).await {
            Ok(answer) => {
                self.refusals = 0;
                self.report_backoff.reset();
                self.state.last_report_hash = report.inventory_hash.clone();
                self.state.last_report_at = Some(Utc::now());
                self.state.last_error = None;
                self.state.refused_report = None;
                // Keep a newer spooled report, if a rescan wrote one meanwhile.
                if self.dir.pending().and_then(|p| p.inventory_hash) == report.inventory_hash {
                    self.dir.clear_pending()?;
                } else {
                    self.retry_report_at = Some(Instant::now());
                }
                self.save();
                tracing::info!(
                    servers = answer.received,
                    created = answer.created,
                    updated = answer.updated,
                    dormant = answer.dormant,
                    "Report accepted."
                );
                Ok(())
            }
            Err(upload::Error::Unauthorized(m)) => {
                self.refused("report", &m)?;
                self.retry_report_at = Some(Instant::now() + self.report_backoff.next(None));
                Ok(())
            }
            Err(upload::Error::Rejected { status, message }) if status != 408 => {
                self.rejected(&report, status, &message)
            }
            Err(e) => {
                let wait = self.report_backoff.next(e.retry_after());
                self.state.last_error = Some(e.to_string());
                self.save();
                tracing::warn!(error = %e, retry_in_secs = wait.as_secs(), "Report not delivered; it is kept on disk and retried.");
                self.retry_report_at = Some(Instant::now() + wait);
                Ok(())
            }
        }
    }

    /// The collector refused the report with a lasting 4xx: a 413 makes reports
    /// smaller (down to a floor); anything else is never resent, until the inventory
    /// changes or a day passes.
    fn rejected(
        &mut self,
        report: &mcpwatch_protocol::wire::ReportRequest,
        status: u16,
        message: &str,
    ) -> Result<(), Error> {
        let budget = self
            .state
            .report_budget_bytes
            .unwrap_or(inventory::REPORT_BUDGET_BYTES);
        let reason = crate::printable::cell(message, 300);
        if status == 413 && budget > inventory::MIN_REPORT_BUDGET_BYTES {
            // The collector takes less than we thought: halve what we send and
            // build the report again (the users with the most are cut first).
            let smaller = (budget / 2).max(inventory::MIN_REPORT_BUDGET_BYTES);
            tracing::warn!(
                status,
                bytes = smaller,
                "The collector refused the report as too large; sending less."
            );
            self.state.report_budget_bytes = Some(smaller);
            self.state.last_error = Some(format!(
                "the collector refused a report as too large (HTTP 413); reports are now cut to {smaller} bytes"
            ));
            self.start_scan(true, Vec::new());
        } else {
            // The collector will refuse this same body every time: never resend
            // it (a retry loop would stop the whole machine from being
            // reported). Say so in `status` and in the heartbeats; the next
            // change of the inventory is reported again.
            let problem =
                format!("the collector refused the report for good (HTTP {status}): {reason}");
            tracing::error!(status, reason = %reason, "The collector refused the report; it is not sent again until the inventory changes.");
            self.state.refused_report = Some(crate::state::RefusedReport {
                inventory_hash: report.inventory_hash.clone().unwrap_or_default(),
                at: Utc::now(),
                error: problem.clone(),
            });
            self.state.last_error = Some(problem);
        }
        if self.dir.pending().and_then(|p| p.inventory_hash) == report.inventory_hash {
            self.dir.clear_pending()?;
        } else {
            self.retry_report_at = Some(Instant::now());
        }
        self.save();
        Ok(())
    }
}
