//! PostgreSQL for the end-to-end tests: a new, empty database for each collector.
//!
//! - `MCPWATCH_E2E_DATABASE_URL` runs the whole suite on PostgreSQL: every
//!   [`crate::TestCollector`] gets its own database there (CI runs the suite once
//!   on redb and once so).
//! - `MCPWATCH_TEST_DATABASE_URL` is the server the tests that are about PostgreSQL
//!   itself use (several instances on one database); without it they say so and
//!   pass, unless `MCPWATCH_REQUIRE_POSTGRES=1` (CI) makes that a failure.

/// The variable that runs the suite on PostgreSQL.
pub const SUITE_VAR: &str = "MCPWATCH_E2E_DATABASE_URL";
/// The variable naming the server for the PostgreSQL tests.
pub const TEST_VAR: &str = "MCPWATCH_TEST_DATABASE_URL";

/// Whether the suite runs on PostgreSQL.
pub fn suite_on_postgres() -> bool {
    std::env::var_os(SUITE_VAR).is_some()
}

/// A new database on the server at `admin_url` (a user who may create databases);
/// answers its URL.
pub fn create_database(admin_url: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the database setup");
    let name = format!("mcpwatch_e2e_{}", uuid::Uuid::new_v4().simple());
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {admin_url}: {e}"));
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = task.await;
    });
    let mut url = reqwest::Url::parse(admin_url).expect("the database URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// A new database for a suite collector, when the suite runs on PostgreSQL.
pub fn suite_database() -> Option<String> {
    std::env::var(SUITE_VAR)
        .ok()
        .map(|url| create_database(&url))
}

/// A new database for a test about PostgreSQL, if there is a test server.
pub fn test_database() -> Option<String> {
    let Ok(url) = std::env::var(TEST_VAR).or_else(|_| std::env::var(SUITE_VAR)) else {
        assert!(
            std::env::var("MCPWATCH_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MCPWATCH_REQUIRE_POSTGRES=1 but {TEST_VAR} is not set"
        );
        eprintln!("skipped: {TEST_VAR} is not set (no PostgreSQL to test against)");
        return None;
    };
    Some(create_database(&url))
}

/// Skip the rest of a test that is about the embedded store's files (backups, the
/// data dir, disk space) when the suite runs on PostgreSQL.
#[macro_export]
macro_rules! redb_only {
    () => {
        if $crate::postgres::suite_on_postgres() {
            eprintln!("skipped on PostgreSQL: this test is about the embedded store's files");
            return;
        }
    };
}

/// Run `sql` in the database at `url` (a test reaching behind the collector).
pub fn execute(url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the database");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("reach the test database");
        let task = tokio::spawn(connection);
        client.batch_execute(sql).await.expect("the statement runs");
        drop(client);
        let _ = task.await;
    });
}
