//! The commands that set the agent up on a machine: `install` (files, config,
//! enrollment, service), `enroll` and `uninstall`.

use std::path::PathBuf;

use crate::cli::{EnrollArgs, InstallArgs, UninstallArgs};
use crate::enroll::Credential;

fn installer(root: Option<&std::path::Path>) -> mcpwatch_installer::Installer {
    let layout = mcpwatch_installer::Layout::new(
        mcpwatch_installer::Platform::current(),
        root.unwrap_or(std::path::Path::new("/")),
    );
    mcpwatch_installer::Installer::new(layout)
}

fn say(lines: &[String]) {
    #[allow(clippy::print_stdout)]
    for line in lines {
        println!("- {line}");
    }
}

/// `install`: files, config, enrollment, service, then what the service manager says.
pub async fn install(mut args: InstallArgs) -> anyhow::Result<()> {
    // An MSI passes every property, set or not: an empty value means not given.
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    args.collector_url = given(args.collector_url);
    args.enroll_secret = given(args.enroll_secret);
    args.ca_file = given(args.ca_file);
    let installer = installer(args.root.as_deref());
    let layout = installer.layout().clone();
    let program = std::env::current_exe()?;
    let settings = mcpwatch_installer::Settings {
        collector_url: args.collector_url.clone(),
        ca_file: args.ca_file.as_ref().map(PathBuf::from),
    };
    say(&installer.prepare(&program, &settings)?);
    // The service will read these files: a broken one is named now, not at its start.
    let config_file = layout.on_disk(&layout.config_file);
    crate::config::load(Some(&config_file), crate::config::Given::default()).map_err(|e| {
        anyhow::Error::from(e).context("the config files cannot be used; nothing was registered")
    })?;

    let state_dir = crate::state::StateDir::open(&layout.on_disk(&layout.state_dir))?;
    if let (Some(server), Some(secret)) = (&args.collector_url, &args.enroll_secret) {
        let server = server.trim_end_matches('/');
        say(&[enroll_now(
            &state_dir,
            server,
            secret,
            settings.ca_file.as_deref(),
            args.no_service,
        )
        .await?]);
    }

    if !args.no_service {
        say(&installer.register(true)?);
    }
    let mut service = installer.state();
    if !args.no_service && layout.is_live() {
        // The service manager answers at once; give the agent a moment to be running.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while service != mcpwatch_installer::ServiceState::Running
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            service = installer.state();
        }
    }
    let state = state_dir.load()?;
    say(&[
        format!("service: {service}"),
        match (&state.agent_id, &state.collector_url) {
            (Some(id), Some(url)) => format!("agent {id}, collector {url}"),
            _ if state_dir.enroll_secret().is_some() => {
                "not enrolled yet: the service enrolls with the kept secret when it reaches the collector".into()
            }
            _ => "not enrolled: give --collector-url and --enroll-secret, or set them in a config file"
                .into(),
        },
    ]);
    Ok(())
}

/// Enroll with `secret` now, for `install`. The secret is never written to a config
/// file: enrolled, it is not kept at all; when the collector cannot be reached, it is
/// kept in the state dir (owner-only) for the service, which deletes it once enrolled;
/// refused, it is dropped, the refusal is noted for `status`, and the error (exit code
/// 78) says what to do. Answers what happened.
async fn enroll_now(
    state_dir: &crate::state::StateDir,
    server: &str,
    secret: &str,
    ca_file: Option<&std::path::Path>,
    packaged: bool,
) -> anyhow::Result<String> {
    let mut state = state_dir.load()?;
    if let (Some(id), Some(url)) = (&state.agent_id, &state.collector_url)
        && url == server
        && state.api_key.is_some()
        && !state.revoked
    {
        state_dir.forget_enroll_secret()?;
        return Ok(format!("already enrolled as agent {id} with {url}"));
    }
    let http = crate::upload::http_client(ca_file)?;
    match crate::enroll::enroll(state_dir, http, server, Credential::EnrollSecret(secret)).await {
        Ok(id) => {
            state_dir.forget_enroll_secret()?;
            Ok(format!("enrolled as agent {id} with {server}"))
        }
        Err(e) if e.is_transient() => {
            state_dir.keep_enroll_secret(secret)?;
            Ok(format!(
                "not enrolled yet ({e}); the enroll secret is kept in {} (root only) until the service enrolls, then deleted",
                state_dir.path().display()
            ))
        }
        Err(e) => {
            state_dir.forget_enroll_secret()?;
            state.last_error = Some(format!("enrollment refused: {e}"));
            state_dir.save(&state)?;
            let what_now = if packaged {
                "the agent is installed but not enrolled, and its service stops at start (exit 78, not restarted) until `mcpwatch-agent enroll --collector-url URL --enroll-secret SECRET` succeeds"
            } else {
                "the service was not registered; run install again with a valid enroll secret"
            };
            Err(anyhow::Error::from(crate::daemon::Error::Enroll(e))
                .context(format!("enrollment refused; {what_now}")))
        }
    }
}

/// `enroll`: exchange an enroll secret or an API key for the agent's identity.
pub async fn enroll(args: EnrollArgs) -> anyhow::Result<()> {
    let dir = crate::state::StateDir::open(&args.state.dir())?;
    let http = crate::upload::http_client(args.ca_file.as_deref())?;
    let credential = match (&args.enroll_secret, &args.api_key) {
        (Some(secret), _) => Credential::EnrollSecret(secret),
        (None, Some(key)) => Credential::ApiKey(key),
        (None, None) => anyhow::bail!("give --enroll-secret or --api-key"),
    };
    let agent_id = crate::enroll::enroll(&dir, http, &args.collector_url, credential).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("Enrolled as agent {agent_id} with {}.", args.collector_url);
    }
    Ok(())
}

/// `uninstall`: stop and remove the service and program (with `--purge`, also the
/// config and state).
pub fn uninstall(args: &UninstallArgs) -> anyhow::Result<()> {
    let done = installer(args.root.as_deref()).uninstall(args.purge)?;
    say(&done);
    Ok(())
}
