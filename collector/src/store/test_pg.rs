//! A fresh PostgreSQL database for each test that runs against the PostgreSQL store:
//! `MCPWATCH_TEST_DATABASE_URL` names a server and a user who may create databases
//! (CI starts one; `.ci/run`). Without it these tests say so and pass, unless
//! `MCPWATCH_REQUIRE_POSTGRES=1` (CI) makes that a failure.

use super::postgres::{PgOptions, PgStore};

/// The variable naming the test server.
pub const URL_VAR: &str = "MCPWATCH_TEST_DATABASE_URL";

/// The URL of a new, empty database on the test server, if there is one.
pub async fn fresh_database() -> Option<String> {
    let Ok(url) = std::env::var(URL_VAR) else {
        assert!(
            std::env::var("MCPWATCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MCPWATCH_REQUIRE_POSTGRES=1 but {URL_VAR} is not set"
        );
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: {URL_VAR} is not set (no PostgreSQL to test against)");
        }
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    let name = format!("mcpwatch_test_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let mut parsed = reqwest::Url::parse(&url).expect("the test database URL is a URL");
    parsed.set_path(&name);
    Some(parsed.to_string())
}

/// Options for a new, empty database on the test server, if there is one.
pub async fn fresh_options() -> Option<PgOptions> {
    Some(PgOptions {
        url: fresh_database().await?,
        password_file: None,
        ca_file: None,
    })
}

/// A store on a new, empty database, if there is a test server.
pub async fn fresh_store() -> Option<PgStore> {
    let options = fresh_options().await?;
    Some(
        PgStore::connect(&options)
            .await
            .expect("connect the test store"),
    )
}
