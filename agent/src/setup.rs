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
        enroll_secret: args.enroll_secret.clone(),
        ca_file: args.ca_file.as_ref().map(PathBuf::from),
    };
    say(&installer.prepare(&program, &settings)?);

    let state_dir = crate::state::StateDir::open(&layout.on_disk(&layout.state_dir))?;
    if let (Some(server), Some(secret)) = (&args.collector_url, &args.enroll_secret) {
        let state = state_dir.load()?;
        let server = server.trim_end_matches('/');
        match (&state.agent_id, &state.collector_url) {
            (Some(id), Some(url)) if url == server && state.api_key.is_some() && !state.revoked => {
                say(&[format!("already enrolled as agent {id} with {url}")]);
            }
            _ => {
                let http = crate::upload::http_client(settings.ca_file.as_deref())?;
                match crate::enroll::enroll(
                    &state_dir,
                    http,
                    server,
                    Credential::EnrollSecret(secret),
                )
                .await
                {
                    Ok(id) => say(&[format!("enrolled as agent {id} with {server}")]),
                    Err(e) if e.is_transient() => say(&[format!(
                        "not enrolled yet ({e}); the service enrolls when it can reach the collector"
                    )]),
                    Err(e) => anyhow::bail!(
                        "{e}; the service was not registered. Run install again with a valid enroll secret"
                    ),
                }
            }
        }
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
            _ => "not enrolled: give --collector-url and --enroll-secret, or set them in the config file"
                .into(),
        },
    ]);
    Ok(())
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
