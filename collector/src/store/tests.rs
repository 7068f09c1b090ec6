//! Conformance story for any [`Store`]. It runs against redb in a temp dir; another
//! backend runs the same functions. It includes the cross-organisation checks: no
//! method given organisation B may read or change organisation A's rows.

use std::sync::Arc;

use chrono::{DateTime, Timelike as _, Utc};
use mcpwatch_protocol::ids::{AgentId, OrgId, SessionId, UserId};
use mcpwatch_protocol::risk::RiskLevel;
use mcpwatch_protocol::server::ServerRecord;
use mcpwatch_protocol::wire::ConfigError;

use super::redb::RedbStore;
use super::*;
use crate::model::{Agent, Enrollment, HostFacts, Org, Role, ServerStatus, Session, User};

fn org(name: &str) -> Org {
    let now = Utc::now();
    Org {
        id: OrgId::new(),
        name: name.into(),
        alert_email: None,
        created_at: now,
        updated_at: now,
    }
}

fn user(org: &Org, email: &str, role: Role) -> User {
    let now = Utc::now();
    User {
        id: UserId::new(),
        org_id: org.id,
        email: email.into(),
        full_name: String::new(),
        role,
        password_hash: "x".into(),
        is_active: true,
        created_at: now,
        updated_at: now,
    }
}

fn agent(org: &Org, n: u8) -> Agent {
    Agent {
        id: AgentId::new(),
        org_id: org.id,
        name: format!("agent-{n}"),
        key_hash: [n; 32],
        key_prefix: "mcp_sk_test".into(),
        public_key: None,
        enrollment: Enrollment::Manual,
        facts: HostFacts::default(),
        created_at: Utc::now(),
        last_seen_at: None,
        last_report_at: None,
        server_count: 0,
        config_errors: Vec::new(),
        last_sequence: None,
        stale: false,
        combinations: Vec::new(),
    }
}

fn server(name: &str, args: &[&str]) -> ServerRecord {
    ServerRecord {
        server_name: name.into(),
        client: Some("claude-desktop".into()),
        config_path: Some("/home/u/.config/Claude/claude_desktop_config.json".into()),
        command: Some("npx".into()),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        ..ServerRecord::default()
    }
}

fn report(servers: Vec<ServerRecord>) -> ReportInput {
    ReportInput {
        servers,
        config_errors: Vec::new(),
        facts: HostFacts::default(),
        sequence: None,
        received_at: Utc::now(),
    }
}

/// Five servers: one critical, one high, one medium (unpinned fs), two low.
fn fleet() -> Vec<ServerRecord> {
    vec![
        server(
            "root-fs",
            &["-y", "@modelcontextprotocol/server-filesystem@1.0.0", "/"],
        ),
        server(
            "home-fs",
            &[
                "-y",
                "@modelcontextprotocol/server-filesystem@1.0.0",
                "/home/u",
            ],
        ),
        server(
            "postgres",
            &["-y", "@modelcontextprotocol/server-postgres@1.0.0"],
        ),
        server("time", &["-y", "mcp-time@1.0.0"]),
        server("memory", &["-y", "mcp-memory@1.0.0"]),
    ]
}

/// The first ten servers of `org`, riskiest first.
async fn first_page(store: &dyn Store, org: OrgId) -> Page<Server> {
    store
        .list_servers(
            org,
            ServerQuery {
                page: 1,
                page_size: 10,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap()
}

/// A fresh store with organisation "A", its admin and one agent (keep the dir alive).
async fn one_agent() -> (tempfile::TempDir, RedbStore, Org, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let (o, a) = one_agent_on(&store).await;
    (dir, store, o, a)
}

/// A store to test, and what must live as long as it.
struct Backend {
    _dir: Option<tempfile::TempDir>,
    store: Box<dyn Store>,
}

/// Every backend to test: redb in a temporary dir, and PostgreSQL when there is a
/// test server (see `test_pg`).
async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbStore::open(dir.path()).unwrap();
    let mut out = vec![Backend {
        _dir: Some(dir),
        store: Box::new(redb),
    }];
    if let Some(pg) = super::test_pg::fresh_store().await {
        out.push(Backend {
            _dir: None,
            store: Box::new(pg),
        });
    }
    out
}

/// Organisation "A", its admin and one agent in `store`.
async fn one_agent_on(store: &dyn Store) -> (Org, Agent) {
    let o = org("A");
    store
        .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
        .await
        .unwrap();
    let a = agent(&o, 1);
    store.create_agent(a.clone()).await.unwrap();
    (o, a)
}

async fn story(store: &dyn Store) {
    // Registration: first only, then closed.
    let (a, b) = (org("A"), org("B"));
    let admin_a = user(&a, "admin@a.example", Role::Admin);
    store
        .create_org_with_admin(a.clone(), admin_a.clone(), true)
        .await
        .unwrap();
    let err = store
        .create_org_with_admin(b.clone(), user(&b, "admin@b.example", Role::Admin), true)
        .await;
    assert!(matches!(err, Err(Error::RegistrationClosed)), "{err:?}");
    let admin_b = user(&b, "admin@b.example", Role::Admin);
    store
        .create_org_with_admin(b.clone(), admin_b.clone(), false)
        .await
        .unwrap();
    let dup = store
        .create_user(a.id, user(&a, "admin@b.example", Role::Viewer))
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");

    // The last admin stays.
    let demote = UserPatch {
        role: Some(Role::Viewer),
        ..UserPatch::default()
    };
    assert!(matches!(
        store
            .update_user(a.id, admin_a.id, demote, Utc::now())
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.delete_user(a.id, admin_a.id).await,
        Err(Error::Conflict(_))
    ));

    // Agents and inventory.
    let agent_a = agent(&a, 1);
    let agent_b = agent(&b, 2);
    store.create_agent(agent_a.clone()).await.unwrap();
    store.create_agent(agent_b.clone()).await.unwrap();
    assert_eq!(
        store.find_agent_by_key([1; 32]).await.unwrap().unwrap().id,
        agent_a.id
    );
    assert!(store.find_agent_by_key([9; 32]).await.unwrap().is_none());
    let outcome = store
        .apply_report(a.id, agent_a.id, report(fleet()))
        .await
        .unwrap();
    assert_eq!((outcome.received, outcome.created), (5, 5));
    store
        .apply_report(
            b.id,
            agent_b.id,
            report(vec![server("b-only", &["b@1.0.0"])]),
        )
        .await
        .unwrap();

    let counts = store.server_counts(a.id).await.unwrap();
    assert_eq!(counts.total(), 5);
    let page = |level, status, agent, search: Option<&str>, page, size| ServerQuery {
        risk_level: level,
        status,
        agent_id: agent,
        search: search.map(str::to_owned),
        sort: None,
        page,
        page_size: size,
    };
    let all = store
        .list_servers(a.id, page(None, None, None, None, 1, 100))
        .await
        .unwrap();
    assert_eq!(all.total, 5);
    let levels: Vec<RiskLevel> = all.items.iter().map(|s| s.risk_level).collect();
    let mut sorted = levels.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(levels, sorted, "riskiest first");
    // Pagination covers every server exactly once.
    let mut seen = Vec::new();
    for p in 1..=3 {
        let got = store
            .list_servers(a.id, page(None, None, None, None, p, 2))
            .await
            .unwrap();
        assert_eq!(got.total, 5);
        seen.extend(got.items.into_iter().map(|s| s.id));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    for level in RiskLevel::ALL {
        let got = store
            .list_servers(a.id, page(Some(level), None, None, None, 1, 100))
            .await
            .unwrap();
        assert!(got.items.iter().all(|s| s.risk_level == level));
        assert_eq!(got.total as usize, got.items.len());
    }
    let by_name = store
        .list_servers(a.id, page(None, None, None, Some("FS"), 1, 100))
        .await
        .unwrap();
    assert_eq!(by_name.total, 2);
    let by_agent = store
        .list_servers(a.id, page(None, None, Some(agent_a.id), None, 1, 100))
        .await
        .unwrap();
    assert_eq!(by_agent.total, 5);

    // A second snapshot without two servers makes them dormant.
    let mut fewer = fleet();
    fewer.truncate(3);
    let outcome = store
        .apply_report(a.id, agent_a.id, report(fewer))
        .await
        .unwrap();
    assert_eq!((outcome.unchanged, outcome.dormant), (3, 2));
    let dormant = store
        .list_servers(
            a.id,
            page(None, Some(ServerStatus::Dormant), None, None, 1, 100),
        )
        .await
        .unwrap();
    assert_eq!(dormant.total, 2);
    assert_eq!(dormant.items.len(), 2);
    let active = store
        .list_servers(
            a.id,
            page(None, Some(ServerStatus::Active), None, None, 1, 100),
        )
        .await
        .unwrap();
    assert_eq!(active.total, 3);
    assert_eq!(
        store
            .get_agent(a.id, agent_a.id)
            .await
            .unwrap()
            .server_count,
        3
    );
    let top = store.top_risks(a.id, 2).await.unwrap();
    assert_eq!(top.len(), 2);
    assert!(top.iter().all(|s| s.status == ServerStatus::Active));
    assert_eq!(top[0].risk_level, RiskLevel::Critical);

    // Alerts: the critical and high servers raised one each.
    let open = store.open_alert_count(a.id).await.unwrap();
    assert!(open >= 1);
    let alerts = store
        .list_alerts(
            a.id,
            AlertQuery {
                dismissed: Some(false),
                page: 1,
                page_size: 100,
                ..AlertQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(alerts.total, open);
    let first_alert = alerts.items[0].clone();

    // Organisation B sees and changes nothing of A.
    let a_server = all.items[0].id;
    assert!(matches!(
        store.get_server(b.id, a_server).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store
            .set_server_verified(b.id, a_server, true, admin_b.id, Utc::now())
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.get_agent(b.id, agent_a.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.delete_agent(b.id, agent_a.id, Utc::now()).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.apply_report(b.id, agent_a.id, report(vec![])).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.get_user(b.id, admin_a.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store
            .update_user(b.id, admin_a.id, UserPatch::default(), Utc::now())
            .await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store.delete_user(b.id, admin_a.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        store
            .dismiss_alert(b.id, first_alert.id, admin_b.id, Utc::now())
            .await,
        Err(Error::NotFound)
    ));
    let b_list = store
        .list_servers(b.id, page(None, None, Some(agent_a.id), None, 1, 100))
        .await
        .unwrap();
    assert_eq!(b_list.total, 0);
    assert_eq!(
        store
            .list_servers(b.id, page(None, None, None, None, 1, 100))
            .await
            .unwrap()
            .total,
        1
    );
    assert_eq!(store.server_counts(b.id).await.unwrap().total(), 1);
    assert!(
        store
            .list_agents(b.id)
            .await
            .unwrap()
            .iter()
            .all(|x| x.org_id == b.id)
    );
    assert!(
        store
            .list_users(b.id)
            .await
            .unwrap()
            .iter()
            .all(|u| u.org_id == b.id)
    );
    assert_eq!(
        store
            .dismiss_all_alerts(b.id, admin_b.id, Utc::now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.open_alert_count(a.id).await.unwrap(),
        open,
        "B's dismiss-all left A's alerts"
    );

    // Dismissing keeps the open count right.
    store
        .dismiss_alert(a.id, first_alert.id, admin_a.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(store.open_alert_count(a.id).await.unwrap(), open - 1);
    store
        .dismiss_all_alerts(a.id, admin_a.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(store.open_alert_count(a.id).await.unwrap(), 0);

    // Sessions rotate once; a reused refresh token ends the session.
    let sid = SessionId::new();
    store
        .create_session(Session {
            id: sid,
            user_id: admin_a.id,
            org_id: a.id,
            refresh_jti: "j1".into(),
            created_at: Utc::now(),
            expires_at: Utc::now(),
        })
        .await
        .unwrap();
    store
        .rotate_session(sid, "j1", "j2".into(), Utc::now())
        .await
        .unwrap();
    assert!(matches!(
        store
            .rotate_session(sid, "j1", "j3".into(), Utc::now())
            .await,
        Err(Error::NotFound)
    ));
    assert!(
        matches!(store.get_session(sid).await, Err(Error::NotFound)),
        "reuse ends the session"
    );

    // Deleting an agent removes its key and servers and their counts.
    store
        .delete_agent(a.id, agent_a.id, Utc::now())
        .await
        .unwrap();
    assert!(store.find_agent_by_key([1; 32]).await.unwrap().is_none());
    assert_eq!(store.server_counts(a.id).await.unwrap().total(), 0);
    assert_eq!(
        store
            .list_servers(a.id, page(None, None, None, None, 1, 100))
            .await
            .unwrap()
            .total,
        0
    );
}

/// After a storage failure the writer closes the database: reads and writes answer
/// `Unavailable` (503) instead of redb's "previous I/O error" forever, the store
/// reopens the file by itself within seconds, and nothing committed before is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_closed_by_a_storage_failure_reopens_by_itself() {
    let (_dir, store, o, a) = one_agent().await;
    store
        .apply_report(o.id, a.id, report(vec![server("kept", &["x"])]))
        .await
        .unwrap();
    store.simulate_storage_failure();
    // Closed: answered as unavailable (or, if the writer has already reopened it on
    // a loaded machine, answered), never as redb's "previous I/O error".
    assert!(matches!(
        store.get_agent(o.id, a.id).await,
        Err(Error::Unavailable(_)) | Ok(_)
    ));
    assert!(store.alive().is_ok(), "recovering is not dead");
    // A write wakes the writer (which would have seen the failure itself), and it
    // reopens the database between writes.
    assert!(matches!(
        store.create_agent(agent(&o, 2)).await,
        Err(Error::Unavailable(_)) | Ok(())
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Writes keep the writer turning; it reopens between them.
        match store.ping().await {
            Ok(()) => break,
            Err(Error::Unavailable(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            other => panic!("the store did not recover: {other:?}"),
        }
    }
    let page = first_page(&store, o.id).await;
    assert_eq!(page.items[0].record.server_name, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_store_passes_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    story(&store).await;
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
    // A snapshot holds the same, and is consistent too.
    let copy = tempfile::tempdir().unwrap();
    let rows = store
        .snapshot(copy.path().join(super::redb::DB_FILE))
        .await
        .unwrap();
    assert!(rows > 10);
    assert_eq!(
        super::redb::maintenance::check_offline(copy.path()).unwrap(),
        Vec::<String>::new()
    );
    // Damaged indexes are named.
    store.damage_indexes_for_test().await.unwrap();
    let problems = store.check().await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("srv_rank") && p.contains("1 entries missing")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("counts") && p.contains("out of date")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_story() {
    let Some(store) = super::test_pg::fresh_store().await else {
        return;
    };
    story(&store).await;
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reports_are_group_committed_and_all_counted() {
    for backend in backends().await {
        concurrent_reports_on(Arc::from(backend.store)).await;
    }
}

async fn concurrent_reports_on(store: Arc<dyn Store>) {
    let o = org("A");
    store
        .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
        .await
        .unwrap();
    let mut agents = Vec::new();
    for n in 0..40u8 {
        let a = agent(&o, n);
        store.create_agent(a.clone()).await.unwrap();
        agents.push(a);
    }
    let tasks: Vec<_> = agents
        .iter()
        .map(|a| {
            let (store, org_id, agent_id) = (Arc::clone(&store), o.id, a.id);
            tokio::spawn(async move { store.apply_report(org_id, agent_id, report(fleet())).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 200);
    // A refused write in a batch leaves the others intact.
    let missing = store.apply_report(o.id, AgentId::new(), report(fleet()));
    let present = store.apply_report(o.id, agents[0].id, report(vec![]));
    let (missing, present) = tokio::join!(missing, present);
    assert!(matches!(missing, Err(Error::NotFound)));
    assert_eq!(present.unwrap().dormant, 5);
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 200);
}

/// A report is planned off the writer; a write to the agent's servers that lands in
/// between (a verification, another report, a policy change) must not be overwritten
/// by the stale plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_planned_before_another_write_is_planned_again() {
    let dir = tempfile::tempdir().unwrap();
    race_story(&RedbStore::open(dir.path()).unwrap()).await;
    if let Some(pg) = super::test_pg::fresh_store().await {
        race_story(&pg).await;
    }
}

/// What the race story needs of a store: a report applied with another write landing
/// between its planning and its application.
trait Racing: Store {
    fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()> + Send,
    ) -> impl std::future::Future<Output = Result<mcpwatch_protocol::wire::ReportResponse>> + Send;
}

impl Racing for RedbStore {
    fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()> + Send,
    ) -> impl std::future::Future<Output = Result<mcpwatch_protocol::wire::ReportResponse>> + Send
    {
        RedbStore::apply_report_racing(self, org, agent, report, meanwhile)
    }
}

impl Racing for super::postgres::PgStore {
    fn apply_report_racing(
        &self,
        org: OrgId,
        agent: AgentId,
        report: ReportInput,
        meanwhile: impl std::future::Future<Output = ()> + Send,
    ) -> impl std::future::Future<Output = Result<mcpwatch_protocol::wire::ReportResponse>> + Send
    {
        super::postgres::PgStore::apply_report_racing(self, org, agent, report, meanwhile)
    }
}

async fn race_story(store: &impl Racing) {
    let o = org("A");
    let admin = user(&o, "a@a.example", Role::Admin);
    store
        .create_org_with_admin(o.clone(), admin.clone(), true)
        .await
        .unwrap();
    let a = agent(&o, 1);
    store.create_agent(a.clone()).await.unwrap();
    store
        .apply_report(o.id, a.id, report(fleet()))
        .await
        .unwrap();
    let all = ServerQuery {
        page: 1,
        page_size: 10,
        ..ServerQuery::default()
    };
    let find = |page: &Page<crate::model::Server>, name: &str| {
        page.items
            .iter()
            .find(|s| s.record.server_name == name)
            .unwrap()
            .clone()
    };
    let before = store.list_servers(o.id, all.clone()).await.unwrap();
    let memory = find(&before, "memory");

    // Verified while the next report (a new env var name: same launch, so a
    // verification carries over) is being planned.
    let mut next = fleet();
    next[4].env_vars = vec!["MEMORY_TOKEN".into()];
    let outcome = store
        .apply_report_racing(o.id, a.id, report(next.clone()), async {
            store
                .set_server_verified(o.id, memory.id, true, admin.id, Utc::now())
                .await
                .unwrap();
        })
        .await
        .unwrap();
    assert_eq!((outcome.updated, outcome.unchanged), (1, 4));
    let after = store.list_servers(o.id, all.clone()).await.unwrap();
    let memory = find(&after, "memory");
    assert!(memory.is_verified, "the verification was lost");
    assert_eq!(
        memory.record.env_vars,
        ["MEMORY_TOKEN"],
        "the report was not applied"
    );

    // Another report from the same agent lands in between: the later one still applies
    // on top of it, and every count stays right.
    let mut third = next.clone();
    third[3] = server("time", &["-y", "mcp-time@3.0.0"]);
    let outcome = store
        .apply_report_racing(o.id, a.id, report(third), async {
            let mut other = next.clone();
            other.pop();
            store.apply_report(o.id, a.id, report(other)).await.unwrap();
        })
        .await
        .unwrap();
    // Planned again against the inventory with "memory" dormant: it comes back.
    assert_eq!(outcome.updated, 2, "{outcome:?}");
    let after = store.list_servers(o.id, all).await.unwrap();
    assert_eq!(after.total, 5);
    assert!(after.items.iter().all(|s| s.status == ServerStatus::Active));
    assert_eq!(find(&after, "time").record.args[1], "mcp-time@3.0.0");
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 5);

    // The policy changes in between: the report is scored under the new policy.
    let mut policy = store.get_policy(o.id).await.unwrap();
    policy.scoring.blocked.push("mcp-memory".into());
    let mut fourth = fleet();
    fourth[4] = server("memory", &["-y", "mcp-memory@4.0.0"]);
    store
        .apply_report_racing(o.id, a.id, report(fourth), async {
            store.put_policy(o.id, policy).await.unwrap();
        })
        .await
        .unwrap();
    let after = first_page(store, o.id).await;
    let memory = find(&after, "memory");
    assert_eq!(
        memory.risk_level,
        RiskLevel::Critical,
        "{:?}",
        memory.findings
    );
    assert_eq!(
        memory.policy_version,
        store.get_policy(o.id).await.unwrap().version
    );
}

/// A large report is planned on the blocking pool; it lands the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_report_is_stored_whole() {
    for backend in backends().await {
        a_large_report_is_stored_whole_on(backend.store.as_ref()).await;
    }
}

async fn a_large_report_is_stored_whole_on(store: &dyn Store) {
    let (o, a) = one_agent_on(store).await;
    let many: Vec<ServerRecord> = (0..250)
        .map(|n| server(&format!("s{n}"), &["-y", &format!("mcp-s{n}@1.0.0")]))
        .collect();
    let first = store
        .apply_report(o.id, a.id, report(many.clone()))
        .await
        .unwrap();
    assert_eq!(first.created, 250);
    let again = store.apply_report(o.id, a.id, report(many)).await.unwrap();
    assert_eq!((again.created, again.unchanged), (0, 250));
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 250);
    // The space report names the servers' table and what its rows take.
    let space = store.space().await.unwrap();
    let servers = space.iter().find(|t| t.table == "servers").unwrap();
    assert!(servers.stored_bytes > 250 * 50, "{servers:?}");
    assert!(
        space
            .windows(2)
            .all(|w| w[0].stored_bytes + w[0].overhead_bytes
                >= w[1].stored_bytes + w[1].overhead_bytes),
        "largest first: {space:?}"
    );
}

/// The history keeps the newest changes, numbered on, and goes with its agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_history_keeps_the_newest_and_goes_with_the_agent() {
    for backend in backends().await {
        change_history_keeps_the_newest_and_goes_with_the_agent_on(backend.store.as_ref()).await;
    }
}

async fn change_history_keeps_the_newest_and_goes_with_the_agent_on(store: &dyn Store) {
    let (o, a) = one_agent_on(store).await;
    let edits = crate::model::MAX_SERVER_CHANGES + 10;
    for v in 0..edits {
        let time = server("time", &["-y", &format!("mcp-time@1.0.{v}")]);
        store
            .apply_report(o.id, a.id, report(vec![time]))
            .await
            .unwrap();
    }
    let all = ServerQuery {
        page: 1,
        page_size: 10,
        ..ServerQuery::default()
    };
    let time = store.list_servers(o.id, all.clone()).await.unwrap().items[0].clone();
    assert_eq!(time.change_seq, edits);
    let history = store.server_changes(o.id, time.id).await.unwrap();
    assert_eq!(history.len() as u64, crate::model::MAX_SERVER_CHANGES);
    assert_eq!(
        history.last().unwrap().command.as_deref(),
        Some(format!("npx -y mcp-time@1.0.{}", edits - 1).as_str()),
        "newest last"
    );
    assert_eq!(
        history[0].command.as_deref(),
        Some(
            format!(
                "npx -y mcp-time@1.0.{}",
                edits - crate::model::MAX_SERVER_CHANGES
            )
            .as_str()
        ),
        "the oldest kept"
    );
    // Another organisation reads nothing of it.
    assert!(
        store
            .server_changes(OrgId::new(), time.id)
            .await
            .unwrap()
            .is_empty()
    );

    store.delete_agent(o.id, a.id, Utc::now()).await.unwrap();
    assert!(
        store
            .server_changes(o.id, time.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A layout-1 database (histories inside server records) is upgraded when opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_database_keeps_its_histories() {
    let dir = tempfile::tempdir().unwrap();
    let o = org("A");
    let a = agent(&o, 1);
    let time_id = {
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
            .await
            .unwrap();
        store.create_agent(a.clone()).await.unwrap();
        for v in 0..3 {
            let time = server("time", &["-y", &format!("mcp-time@1.0.{v}")]);
            store
                .apply_report(o.id, a.id, report(vec![time]))
                .await
                .unwrap();
        }
        let page = first_page(&store, o.id).await;
        let id = page.items[0].id;
        store.make_layout_1_for_test(o.id, id).await.unwrap();
        assert!(store.server_changes(o.id, id).await.unwrap().is_empty());
        id
    };
    let store = (0..200)
        .find_map(|_| match RedbStore::open(dir.path()) {
            Ok(s) => Some(s),
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            }
        })
        .expect("database reopens once the first store is dropped");
    let history = store.server_changes(o.id, time_id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "updated", "updated"]);
    let time = store.get_server(o.id, time_id).await.unwrap();
    assert_eq!(time.change_seq, 3);
    // New changes number on after the migrated ones.
    let time4 = server("time", &["-y", "mcp-time@1.0.9"]);
    store
        .apply_report(o.id, a.id, report(vec![time4]))
        .await
        .unwrap();
    let history = store.server_changes(o.id, time_id).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[3].command.as_deref(), Some("npx -y mcp-time@1.0.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let o = org("A");
    let a = agent(&o, 3);
    {
        let store = RedbStore::open(dir.path()).unwrap();
        store
            .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
            .await
            .unwrap();
        store.create_agent(a.clone()).await.unwrap();
        store
            .apply_report(o.id, a.id, report(fleet()))
            .await
            .unwrap();
    }
    // The writer thread holds the database until its channel closes.
    let store = (0..200)
        .find_map(|_| match RedbStore::open(dir.path()) {
            Ok(s) => Some(s),
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            }
        })
        .expect("database reopens once the first store is dropped");
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 5);
    assert!(
        store
            .find_user_by_email("a@a.example")
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(super::redb::DB_FILE),
        b"this is not a redb file at all, just text",
    )
    .unwrap();
    let err = RedbStore::open(dir.path()).err().expect("refused");
    assert!(err.to_string().contains("mcpwatch.redb"), "{err}");
}

/// The sweep marks exactly the agents last heard from before its cutoff, to the
/// second, however the time was saved (a report, presence saved later, a heartbeat),
/// and never an agent without servers or one marked already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_marks_exactly_the_agents_silent_before_its_cutoff() {
    for backend in backends().await {
        the_sweep_marks_exactly_the_agents_silent_before_its_cutoff_on(backend.store.as_ref())
            .await;
    }
}

async fn the_sweep_marks_exactly_the_agents_silent_before_its_cutoff_on(store: &dyn Store) {
    let o = org("A");
    store
        .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
        .await
        .unwrap();
    // Whole seconds: PostgreSQL keeps microseconds.
    let now = Utc::now().with_nanosecond(0).unwrap();
    let hours = |h: i64| now - chrono::Duration::hours(h);
    let agents: Vec<Agent> = (1..=4).map(|n| agent(&o, n)).collect();
    for a in &agents {
        store.create_agent(a.clone()).await.unwrap();
    }
    let [long, touched, boundary, empty] = [0, 1, 2, 3].map(|i| agents[i].id);
    // None can become silent before it has servers.
    assert_eq!(store.newest_silent_since().await.unwrap(), None);
    let heard = [
        (long, hours(3)),
        (touched, hours(2)),
        (boundary, hours(2) + chrono::Duration::seconds(30)),
    ];
    for (id, at) in heard {
        store
            .apply_report(o.id, id, report_at(fleet(), at))
            .await
            .unwrap();
    }
    // Presence saved later moves one agent forward (and a time in the past does not
    // move another back).
    store
        .touch_agents(vec![
            (o.id, touched, now - chrono::Duration::minutes(90)),
            (o.id, long, hours(4)),
        ])
        .await
        .unwrap();
    // Heard from most recently: `touched`, by the presence saved (`empty` has no
    // servers, and cannot become silent).
    assert_eq!(
        store.newest_silent_since().await.unwrap(),
        Some(now - chrono::Duration::minutes(90))
    );
    let sweep_up_to = |cutoff: DateTime<Utc>, limit: usize| async move {
        let mut marked: Vec<AgentId> = store
            .sweep_silent_agents(cutoff, now, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        marked.sort();
        marked
    };
    let sweep = |cutoff: DateTime<Utc>| sweep_up_to(cutoff, usize::MAX);
    assert_eq!(sweep(hours(3)).await, vec![], "not before the cutoff");
    // All three are silent at `now`: up to one takes the one silent longest.
    assert_eq!(sweep_up_to(now, 1).await, vec![long]);
    let boundary_at = heard[2].1;
    assert_eq!(sweep(boundary_at).await, vec![], "not before the cutoff");
    assert_eq!(
        sweep(boundary_at + chrono::Duration::seconds(1)).await,
        vec![boundary]
    );
    assert_eq!(sweep(now).await, vec![touched], "marked ones are not again");
    assert_eq!(
        store.newest_silent_since().await.unwrap(),
        None,
        "all marked"
    );
    // Heard from again: watched again from then.
    let update = HeartbeatUpdate {
        facts: HostFacts::default(),
        seen_at: now - chrono::Duration::minutes(10),
        bind_public_key: None,
    };
    store.record_heartbeat(o.id, long, update).await.unwrap();
    assert_eq!(
        store.newest_silent_since().await.unwrap(),
        Some(now - chrono::Duration::minutes(10))
    );
    assert_eq!(sweep(now - chrono::Duration::minutes(11)).await, vec![]);
    assert_eq!(sweep(now).await, vec![long]);
    assert!(
        !sweep(now + chrono::Duration::hours(1))
            .await
            .contains(&empty)
    );
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_agents_make_their_servers_dormant_until_heard_from() {
    for backend in backends().await {
        silent_agents_make_their_servers_dormant_until_heard_from_on(backend.store.as_ref()).await;
    }
}

async fn silent_agents_make_their_servers_dormant_until_heard_from_on(store: &dyn Store) {
    let o = org("A");
    store
        .create_org_with_admin(o.clone(), user(&o, "a@a.example", Role::Admin), true)
        .await
        .unwrap();
    let quiet = agent(&o, 1);
    store.create_agent(quiet.clone()).await.unwrap();
    store
        .apply_report(o.id, quiet.id, report(fleet()))
        .await
        .unwrap();
    let status_total = |status| ServerQuery {
        status: Some(status),
        page: 1,
        page_size: 100,
        ..ServerQuery::default()
    };

    // Not silent yet.
    assert!(
        store
            .sweep_silent_agents(
                Utc::now() - chrono::Duration::hours(1),
                Utc::now(),
                usize::MAX
            )
            .await
            .unwrap()
            .is_empty()
    );
    let marked = store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(1),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    assert_eq!(marked, vec![(o.id, quiet.id)]);
    assert_eq!(
        store
            .list_servers(o.id, status_total(ServerStatus::Dormant))
            .await
            .unwrap()
            .total,
        5
    );
    assert_eq!(
        store
            .list_servers(o.id, status_total(ServerStatus::Active))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    assert!(
        store
            .sweep_silent_agents(
                Utc::now() + chrono::Duration::seconds(1),
                Utc::now(),
                usize::MAX
            )
            .await
            .unwrap()
            .is_empty(),
        "once"
    );

    // A heartbeat brings them back without a report.
    let update = HeartbeatUpdate {
        facts: HostFacts::default(),
        seen_at: Utc::now(),
        bind_public_key: None,
    };
    store
        .record_heartbeat(o.id, quiet.id, update)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_servers(o.id, status_total(ServerStatus::Active))
            .await
            .unwrap()
            .total,
        5
    );

    // Silent again, then a report that drops two servers: three active, two dormant.
    store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(1),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    let mut fewer = fleet();
    fewer.truncate(3);
    let outcome = store
        .apply_report(o.id, quiet.id, report(fewer))
        .await
        .unwrap();
    assert_eq!((outcome.unchanged, outcome.dormant), (3, 2));
    let active = store
        .list_servers(o.id, status_total(ServerStatus::Active))
        .await
        .unwrap();
    assert_eq!((active.total, active.items.len()), (3, 3));
    // The two dropped servers stay dormant when the agent is next marked and woken.
    store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(1),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    let update = HeartbeatUpdate {
        facts: HostFacts::default(),
        seen_at: Utc::now(),
        bind_public_key: None,
    };
    store
        .record_heartbeat(o.id, quiet.id, update)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_servers(o.id, status_total(ServerStatus::Dormant))
            .await
            .unwrap()
            .total,
        2
    );
    assert_eq!(store.server_counts(o.id).await.unwrap().total(), 5);
}

fn open_alerts_of(
    page: &Page<crate::model::Alert>,
    kind: crate::model::AlertKind,
) -> Vec<crate::model::Alert> {
    page.items
        .iter()
        .filter(|a| a.kind == kind && !a.dismissed)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_repeat_as_updates_and_dismissal_sticks() {
    for backend in backends().await {
        alerts_fire_once_repeat_as_updates_and_dismissal_sticks_on(backend.store.as_ref()).await;
    }
}

async fn alerts_fire_once_repeat_as_updates_and_dismissal_sticks_on(store: &dyn Store) {
    use crate::model::AlertKind;
    let o = org("A");
    let admin = user(&o, "a@a.example", Role::Admin);
    store
        .create_org_with_admin(o.clone(), admin.clone(), true)
        .await
        .unwrap();
    let a = agent(&o, 1);
    store.create_agent(a.clone()).await.unwrap();
    let all = || AlertQuery {
        page: 1,
        page_size: 100,
        ..AlertQuery::default()
    };

    // A harmless server, then the same name running three different things.
    store
        .apply_report(
            o.id,
            a.id,
            report(vec![server("helper", &["-y", "helper@1.0.0"])]),
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_alerts(o.id, all()).await.unwrap().total,
        0,
        "a low server raises nothing"
    );
    store
        .apply_report(
            o.id,
            a.id,
            report(vec![server("helper", &["-y", "helper@2.0.0"])]),
        )
        .await
        .unwrap();
    store
        .apply_report(
            o.id,
            a.id,
            report(vec![server("helper", &["-y", "helper@3.0.0"])]),
        )
        .await
        .unwrap();
    let page = store.list_alerts(o.id, all()).await.unwrap();
    let changed = open_alerts_of(&page, AlertKind::ServerChanged);
    assert_eq!(changed.len(), 1, "{:?}", page.items);
    assert_eq!(changed[0].occurrences, 2);
    assert_eq!(
        changed[0].details["before"]["command"],
        "npx -y helper@2.0.0"
    );
    assert_eq!(
        changed[0].details["after"]["command"],
        "npx -y helper@3.0.0"
    );
    assert_eq!(store.open_alert_count(o.id).await.unwrap(), 1);

    // Dismissed: it stays dismissed, and the next change raises a new alert.
    store
        .dismiss_alert(o.id, changed[0].id, admin.id, Utc::now())
        .await
        .unwrap();
    store
        .apply_report(
            o.id,
            a.id,
            report(vec![server("helper", &["-y", "helper@3.0.0"])]),
        )
        .await
        .unwrap();
    assert_eq!(
        store.open_alert_count(o.id).await.unwrap(),
        0,
        "no change, no alert"
    );
    // Riskier than before: critical.
    store
        .apply_report(
            o.id,
            a.id,
            report(vec![server(
                "helper",
                &[
                    "-y",
                    "@modelcontextprotocol/server-filesystem@2026.9.1",
                    "/",
                ],
            )]),
        )
        .await
        .unwrap();
    let page = store.list_alerts(o.id, all()).await.unwrap();
    let changed = open_alerts_of(&page, AlertKind::ServerChanged);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].occurrences, 1);
    assert_eq!(changed[0].severity, RiskLevel::Critical);
    assert_eq!(page.items.iter().filter(|x| x.dismissed).count(), 1);
    // Its event shows the alert, its server and its agent as the report stored them.
    let events = store.events_after(o.id, None, 1000).await.unwrap();
    let created = events
        .iter()
        .rev()
        .find(|e| e.data["alert"]["id"] == serde_json::json!(changed[0].id))
        .unwrap();
    let stored_server = store
        .get_server(o.id, changed[0].server_id.unwrap())
        .await
        .unwrap();
    let stored_agent = store.get_agent(o.id, a.id).await.unwrap();
    let expected = crate::events::alert_changed(
        &changed[0],
        crate::events::EventName::AlertCreated,
        crate::events::AlertContext {
            server: Some(&stored_server),
            agent: Some(&stored_agent),
        },
    );
    assert_eq!(created.event, crate::events::EventName::AlertCreated);
    assert_eq!(created.data, expected.data);

    // Config errors: once per new path.
    let mut with_error = report(vec![server(
        "helper",
        &[
            "-y",
            "@modelcontextprotocol/server-filesystem@2026.9.1",
            "/",
        ],
    )]);
    with_error.config_errors = vec![ConfigError {
        path: "/home/u/.cursor/mcp.json".into(),
        client: Some("cursor".into()),
        error: "invalid JSON at line 3 column 1".into(),
    }];
    store
        .apply_report(o.id, a.id, with_error.clone())
        .await
        .unwrap();
    store
        .apply_report(o.id, a.id, with_error.clone())
        .await
        .unwrap();
    let page = store.list_alerts(o.id, all()).await.unwrap();
    let errors = open_alerts_of(&page, AlertKind::ConfigErrors);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].occurrences, 1, "the same broken file is not news");
    assert_eq!(errors[0].agent_id, Some(a.id));

    // Agent silent: once per transition.
    store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(1),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(2),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    let page = store.list_alerts(o.id, all()).await.unwrap();
    assert_eq!(open_alerts_of(&page, AlertKind::AgentSilent).len(), 1);
    assert_eq!(
        open_alerts_of(&page, AlertKind::AgentSilent)[0].occurrences,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_scored_by_older_rules_are_rescored_in_batches() {
    use crate::model::AlertKind;
    let (_dir, store, o, a) = one_agent().await;
    store
        .apply_report(o.id, a.id, report(fleet()))
        .await
        .unwrap();
    let all = store
        .list_servers(
            o.id,
            ServerQuery {
                page: 1,
                page_size: 100,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    let critical = all
        .items
        .iter()
        .find(|s| s.risk_level == RiskLevel::Critical)
        .unwrap()
        .clone();
    let alerts_before = store.open_alert_count(o.id).await.unwrap();
    let counts_at_ingest = store.server_counts(o.id).await.unwrap();
    store
        .dismiss_all_alerts(o.id, UserId::new(), Utc::now())
        .await
        .unwrap();
    // Pretend every server was scored low by rules v1.
    for s in &all.items {
        store
            .set_rules_version_for_test(o.id, s.id, 1, 5)
            .await
            .unwrap();
    }
    assert_eq!(store.server_counts(o.id).await.unwrap().low, 5);
    assert!(alerts_before > 0);

    let mut cursor = None;
    let mut total = 0;
    let mut calls = 0;
    loop {
        let (n, next) = store.rescore_outdated(cursor, 2, Utc::now()).await.unwrap();
        total += n;
        calls += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(total, 5);
    assert!(calls >= 3, "batches of 2");
    let after = store.get_server(o.id, critical.id).await.unwrap();
    assert_eq!(
        (after.risk_level, after.rules_version),
        (RiskLevel::Critical, mcpwatch_protocol::risk::RULES_VERSION)
    );
    let history = store.server_changes(o.id, critical.id).await.unwrap();
    let history = crate::model::history(&after, history);
    assert_eq!(history.last().unwrap().kind, "rescored");
    assert_eq!(after.change_seq, history.len() as u64);
    assert_eq!(
        store.server_counts(o.id).await.unwrap(),
        counts_at_ingest,
        "indexes and counts follow the new levels"
    );
    let critical_page = store
        .list_servers(
            o.id,
            ServerQuery {
                risk_level: Some(RiskLevel::Critical),
                page: 1,
                page_size: 100,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(critical_page.total as usize, critical_page.items.len());
    let raised = store
        .list_alerts(
            o.id,
            AlertQuery {
                dismissed: Some(false),
                page: 1,
                page_size: 100,
                ..AlertQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(
        raised
            .items
            .iter()
            .any(|x| x.kind == AlertKind::RiskIncreased && x.server_id == Some(critical.id))
    );
    // Nothing left to do.
    assert_eq!(
        store.rescore_outdated(None, 100, Utc::now()).await.unwrap(),
        (0, None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combinations_follow_the_snapshot() {
    for backend in backends().await {
        combinations_follow_the_snapshot_on(backend.store.as_ref()).await;
    }
}

async fn combinations_follow_the_snapshot_on(store: &dyn Store) {
    use crate::model::AlertKind;
    let (o, a) = one_agent_on(store).await;
    let fs = server(
        "files",
        &[
            "-y",
            "@modelcontextprotocol/server-filesystem@2026.9.1",
            "/home/u/src",
        ],
    );
    let fetch = server("web", &["-y", "firecrawl-mcp@1.12.0"]);
    store
        .apply_report(o.id, a.id, report(vec![fs.clone()]))
        .await
        .unwrap();
    let alone = first_page(store, o.id).await.items[0].risk_score;

    store
        .apply_report(o.id, a.id, report(vec![fs.clone(), fetch]))
        .await
        .unwrap();
    let stored = store.get_agent(o.id, a.id).await.unwrap();
    assert_eq!(stored.combinations.len(), 1);
    assert_eq!(stored.combinations[0].servers, ["files", "web"]);
    let page = store
        .list_servers(
            o.id,
            ServerQuery {
                search: Some("files".into()),
                page: 1,
                page_size: 10,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    // Told of the combination; its own score stays its own.
    assert_eq!(page.items[0].risk_score, alone);
    let alerts = store
        .list_alerts(
            o.id,
            AlertQuery {
                page: 1,
                page_size: 100,
                ..AlertQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        alerts
            .items
            .iter()
            .filter(|x| x.kind == AlertKind::DangerousCombination)
            .count(),
        1
    );

    // The web server goes away: so does the combination and its +10.
    store
        .apply_report(o.id, a.id, report(vec![fs]))
        .await
        .unwrap();
    assert!(
        store
            .get_agent(o.id, a.id)
            .await
            .unwrap()
            .combinations
            .is_empty()
    );
    let page = first_page(store, o.id).await;
    for s in &page.items {
        assert!(
            !s.findings
                .iter()
                .any(|f| f.rule_id.starts_with("MCP-COMBO")),
            "{}",
            s.record.server_name
        );
    }
    let files = page
        .items
        .iter()
        .find(|s| s.record.server_name == "files")
        .unwrap();
    assert_eq!(files.risk_score, alone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_seen_since_lists_only_recent_ones_across_organisations() {
    for backend in backends().await {
        agents_seen_since_lists_only_recent_ones_across_organisations_on(backend.store.as_ref())
            .await;
    }
}

async fn agents_seen_since_lists_only_recent_ones_across_organisations_on(store: &dyn Store) {
    let (a, b) = (org("A"), org("B"));
    for o in [&a, &b] {
        store
            .create_org_with_admin(
                o.clone(),
                user(o, &format!("x@{}.example", o.name), Role::Admin),
                false,
            )
            .await
            .unwrap();
    }
    let (recent, old, never, elsewhere) = (agent(&a, 1), agent(&a, 2), agent(&a, 3), agent(&b, 4));
    for x in [&recent, &old, &never, &elsewhere] {
        store.create_agent(x.clone()).await.unwrap();
    }
    let now = Utc::now();
    store
        .touch_agents(vec![
            (a.id, recent.id, now),
            (a.id, old.id, now - chrono::Duration::hours(1)),
            (b.id, elsewhere.id, now),
        ])
        .await
        .unwrap();
    let mut seen = store
        .agents_seen_since(now - chrono::Duration::minutes(5))
        .await
        .unwrap();
    seen.sort_by_key(|(_, id, _)| id.to_string());
    let mut want = vec![(a.id, recent.id, now), (b.id, elsewhere.id, now)];
    want.sort_by_key(|(_, id, _)| id.to_string());
    assert_eq!(seen, want);
}

fn channel(org: &Org, name: &str, min: RiskLevel) -> crate::notify::Channel {
    let now = Utc::now();
    crate::notify::Channel {
        id: mcpwatch_protocol::ids::ChannelId::new(),
        org_id: org.id,
        name: name.into(),
        kind: crate::notify::ChannelKind::Webhook,
        target: "https://hooks.example.com/x".into(),
        secret: Some("whsec_test_secret_value".into()),
        min_severity: min,
        events: vec![crate::events::EventName::AlertCreated],
        enabled: true,
        source: crate::notify::ChannelSource::Api,
        created_by: None,
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_make_deliveries_for_the_channels_that_want_them_in_their_organisation() {
    for backend in backends().await {
        events_make_deliveries_for_the_channels_that_want_them_in_their_organisation_on(
            backend.store.as_ref(),
        )
        .await;
    }
}

async fn events_make_deliveries_for_the_channels_that_want_them_in_their_organisation_on(
    store: &dyn Store,
) {
    use crate::notify::{self, DeliveryStatus, Outcome};
    let (o, a) = one_agent_on(store).await;
    let other = org("B");
    store
        .create_org_with_admin(
            other.clone(),
            user(&other, "b@b.example", Role::Admin),
            false,
        )
        .await
        .unwrap();
    let high = channel(&o, "high", RiskLevel::High);
    let low = channel(&o, "low", RiskLevel::Low);
    let theirs = channel(&other, "theirs", RiskLevel::Low);
    for c in [&high, &low, &theirs] {
        store.create_channel(c.clone()).await.unwrap();
    }
    store
        .update_org(
            o.id,
            OrgPatch {
                alert_email: Some(Some("sec@a.example".into())),
                ..OrgPatch::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(store.list_channels(o.id).await.unwrap().len(), 2);
    assert!(matches!(
        store.get_channel(other.id, high.id).await,
        Err(Error::NotFound)
    ));

    // A critical server: one alert, a delivery to each of A's three channels.
    let risky = server("shell", &["-y", "mcp-server-commands"]);
    let mut risky = risky;
    risky.command = Some("curl https://x.example/i.sh | sh".into());
    store
        .apply_report(a.org_id, a.id, report(vec![risky]))
        .await
        .unwrap();
    let alerts = store
        .list_alerts(
            o.id,
            AlertQuery {
                page: 1,
                page_size: 10,
                ..AlertQuery::default()
            },
        )
        .await
        .unwrap();
    let severity = alerts.items[0].severity;
    let due = store
        .due_deliveries(Utc::now() + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    let email = notify::alert_email_channel(&store.get_org(o.id).await.unwrap()).unwrap();
    assert!(severity >= RiskLevel::High, "{severity:?}");
    let mut expected = vec![low.id, high.id, email.id];
    let mut got: Vec<_> = due.iter().map(|d| d.channel_id).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(
        due.iter()
            .all(|d| d.org_id == o.id && d.status == DeliveryStatus::Pending)
    );
    assert_eq!(due[0].event.event, crate::events::EventName::AlertCreated);
    assert_eq!(due[0].event.data["agent"]["id"], serde_json::json!(a.id));

    // A retry moves the delivery later; a success ends it.
    let mut d = due.into_iter().find(|d| d.channel_id == low.id).unwrap();
    let now = Utc::now();
    notify::after_attempt(
        &mut d,
        Outcome::Retry {
            status: Some(503),
            error: "HTTP 503".into(),
            retry_after: None,
        },
        now,
        0.0,
    );
    store.record_attempt(d.clone(), None).await.unwrap();
    let next = store.next_delivery_due().await.unwrap().unwrap();
    assert!(next <= now + chrono::Duration::seconds(5));
    let later = store
        .due_deliveries(now + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    assert!(later.iter().all(|x| x.id != d.id));
    notify::after_attempt(&mut d, Outcome::Delivered { status: Some(200) }, now, 0.0);
    store.record_attempt(d.clone(), None).await.unwrap();
    let all = store
        .due_deliveries(DateTime::<Utc>::MAX_UTC, 100)
        .await
        .unwrap();
    assert!(all.iter().all(|x| x.id != d.id));
    let listed = store
        .list_deliveries(
            o.id,
            DeliveryQuery {
                channel_id: Some(low.id),
                page: 1,
                page_size: 10,
                ..DeliveryQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            listed.total,
            listed.items[0].status,
            listed.items[0].attempts
        ),
        (1, DeliveryStatus::Delivered, 2)
    );
    let none = store
        .list_deliveries(
            other.id,
            DeliveryQuery {
                page: 1,
                page_size: 10,
                ..DeliveryQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(none.total, 0);

    // A delivery that fails for good raises an alert about its channel, which goes to
    // the other channels but not to the failing one.
    {
        let mut h = all
            .iter()
            .find(|x| x.channel_id == high.id)
            .cloned()
            .unwrap();
        notify::after_attempt(
            &mut h,
            Outcome::Refused {
                status: Some(404),
                error: "HTTP 404".into(),
            },
            now,
            0.0,
        );
        let alert = crate::alerts::notification_failed(&high, &h, now);
        store.record_attempt(h, Some(alert)).await.unwrap();
        let open = store
            .list_alerts(
                o.id,
                AlertQuery {
                    dismissed: Some(false),
                    page: 1,
                    page_size: 10,
                    ..AlertQuery::default()
                },
            )
            .await
            .unwrap();
        assert!(open.items.iter().any(|x| x.channel_id == Some(high.id)));
        let fresh = store
            .due_deliveries(DateTime::<Utc>::MAX_UTC, 100)
            .await
            .unwrap();
        let for_failure: Vec<_> = fresh
            .iter()
            .filter(|x| x.event.data["alert"]["channel_id"] == serde_json::json!(high.id))
            .map(|x| x.channel_id)
            .collect();
        assert!(for_failure.contains(&low.id) && !for_failure.contains(&high.id));
    }

    // Deleting a channel fails what it still had to send; other organisations cannot.
    assert!(matches!(
        store.delete_channel(other.id, low.id).await,
        Err(Error::NotFound)
    ));
    store.delete_channel(o.id, low.id).await.unwrap();
    let left = store
        .due_deliveries(DateTime::<Utc>::MAX_UTC, 100)
        .await
        .unwrap();
    assert!(left.iter().all(|x| x.channel_id != low.id));
}

/// The census as a full recount of the stored servers would give it: (group, key) →
/// (servers, hosts, users, clients, launches, versions with hosts).
type Recount =
    std::collections::BTreeMap<(u8, String), (u64, usize, usize, usize, usize, Vec<(String, u64)>)>;

async fn recount(store: &dyn Store, org: OrgId) -> Recount {
    use std::collections::{BTreeMap, BTreeSet};
    let all = store
        .list_servers(
            org,
            ServerQuery {
                page: 1,
                page_size: 100_000,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    #[derive(Default)]
    struct Acc {
        servers: u64,
        hosts: BTreeSet<[u8; 16]>,
        users: BTreeSet<([u8; 16], String)>,
        clients: BTreeSet<String>,
        launches: BTreeSet<String>,
        versions: BTreeMap<String, BTreeSet<[u8; 16]>>,
    }
    let mut acc: BTreeMap<(u8, String), Acc> = BTreeMap::new();
    for server in &all.items {
        for m in crate::census::marks(server) {
            let key = match &m.ecosystem {
                Some(e) => format!("{e}:{}", m.key),
                None => m.key.clone(),
            };
            let a = acc.entry((m.group.code(), key)).or_default();
            a.servers += 1;
            a.hosts.insert(m.agent);
            if let Some(u) = &m.user {
                a.users.insert((m.agent, u.clone()));
            }
            if let Some(c) = &m.client {
                a.clients.insert(c.clone());
            }
            a.launches.insert(m.fingerprint.clone());
            if let Some(v) = &m.version {
                a.versions.entry(v.clone()).or_default().insert(m.agent);
            }
        }
    }
    acc.into_iter()
        .map(|(k, a)| {
            let mut versions: Vec<(String, u64)> = a
                .versions
                .into_iter()
                .map(|(v, h)| (v, h.len() as u64))
                .collect();
            versions.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            (
                k,
                (
                    a.servers,
                    a.hosts.len(),
                    a.users.len(),
                    a.clients.len(),
                    a.launches.len(),
                    versions,
                ),
            )
        })
        .collect()
}

async fn census_now(store: &dyn Store, org: OrgId) -> Recount {
    let mut out = Recount::new();
    for group in crate::census::Group::ALL {
        for by_hosts in [true, false] {
            let page = store
                .census(
                    org,
                    CensusQuery {
                        group,
                        by_hosts,
                        direction: Direction::Desc,
                        page: 1,
                        page_size: 1000,
                    },
                )
                .await
                .unwrap();
            assert_eq!(page.total as usize, page.items.len());
            if by_hosts {
                let hosts: Vec<u64> = page.items.iter().map(|(c, _)| c.hosts).collect();
                assert!(hosts.windows(2).all(|w| w[0] >= w[1]), "{hosts:?}");
            }
            for (c, versions) in page.items {
                let key = match &c.ecosystem {
                    Some(e) => format!("{e}:{}", c.key),
                    None => c.key.clone(),
                };
                out.insert(
                    (group.code(), key),
                    (
                        c.servers,
                        c.hosts as usize,
                        c.users as usize,
                        c.clients as usize,
                        c.launches as usize,
                        versions.into_iter().map(|v| (v.version, v.hosts)).collect(),
                    ),
                );
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_census_always_equals_a_full_recount() {
    for backend in backends().await {
        the_census_always_equals_a_full_recount_on(backend.store.as_ref()).await;
    }
}

async fn the_census_always_equals_a_full_recount_on(store: &dyn Store) {
    let (o, a) = one_agent_on(store).await;
    let b = agent(&o, 2);
    store.create_agent(b.clone()).await.unwrap();
    let with_user = |mut s: ServerRecord, user: &str, client: &str| {
        s.os_user = Some(user.into());
        s.client = Some(client.into());
        s
    };
    let fs = |v: &str| {
        let mut s = server(
            "files",
            &[
                "-y",
                &format!("@modelcontextprotocol/server-filesystem@{v}"),
                "/tmp",
            ],
        );
        s.package = Some(mcpwatch_protocol::server::Package {
            ecosystem: "npm".into(),
            name: "@modelcontextprotocol/server-filesystem".into(),
            version: Some(v.into()),
        });
        s
    };
    let mut remote = server("remote", &[]);
    remote.command = None;
    remote.url = Some("https://mcp.example.com/sse?token=[REDACTED]".into());
    // Step by step, checking after each: new servers on two hosts, a version change, a
    // server gone dormant, a changed launch under the same name, an agent deleted.
    let steps: Vec<(AgentId, Vec<ServerRecord>)> = vec![
        (
            a.id,
            vec![
                with_user(fs("1.0.0"), "alice", "cursor"),
                with_user(remote.clone(), "alice", "cursor"),
            ],
        ),
        (
            b.id,
            vec![
                with_user(fs("1.0.0"), "bob", "claude-desktop"),
                with_user(fs("2.0.0"), "bob", "vscode"),
            ],
        ),
        (
            a.id,
            vec![
                with_user(fs("2.0.0"), "alice", "cursor"),
                with_user(remote.clone(), "alice", "cursor"),
            ],
        ),
        (b.id, vec![with_user(fs("2.0.0"), "bob", "vscode")]),
        (
            a.id,
            vec![with_user(
                server("files", &["-y", "evil-files"]),
                "alice",
                "cursor",
            )],
        ),
    ];
    for (n, (agent_id, servers)) in steps.into_iter().enumerate() {
        store
            .apply_report(o.id, agent_id, report(servers))
            .await
            .unwrap();
        let census = census_now(store, o.id).await;
        assert_eq!(census, recount(store, o.id).await, "after step {n}");
        if n == 1 {
            let package = (
                crate::census::Group::Package.code(),
                "npm:@modelcontextprotocol/server-filesystem".to_owned(),
            );
            assert_eq!(
                census[&package].5,
                [("1.0.0".to_owned(), 2), ("2.0.0".to_owned(), 1)]
            );
            assert!(census.contains_key(&(
                crate::census::Group::Url.code(),
                "https://mcp.example.com/sse".to_owned()
            )));
        }
    }
    let files = census_now(store, o.id).await;
    let row = &files[&(crate::census::Group::ServerName.code(), "files".to_owned())];
    assert_eq!(
        (row.1, row.4),
        (2, 2),
        "two hosts, two different launches under one name"
    );

    store.delete_agent(o.id, b.id, Utc::now()).await.unwrap();
    assert_eq!(
        census_now(store, o.id).await,
        recount(store, o.id).await,
        "after deleting an agent"
    );
    // Another organisation's census is its own.
    assert!(census_now(store, OrgId::new()).await.is_empty());
}

/// Open the database in `dir` again once the previous store has let go of it.
fn reopen(dir: &std::path::Path) -> RedbStore {
    (0..200)
        .find_map(|_| match RedbStore::open(dir) {
            Ok(s) => Some(s),
            Err(_) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            }
        })
        .expect("database reopens once the first store is dropped")
}

/// Organisation `o` with its admin, and three agents each reporting `servers()`.
async fn three_agents_reporting(
    store: &dyn Store,
    o: &Org,
    servers: impl Fn() -> Vec<ServerRecord>,
) {
    store
        .create_org_with_admin(o.clone(), user(o, "a@a.example", Role::Admin), true)
        .await
        .unwrap();
    for n in 1..=3 {
        let a = agent(o, n);
        store.create_agent(a.clone()).await.unwrap();
        store
            .apply_report(o.id, a.id, report(servers()))
            .await
            .unwrap();
    }
}

/// Layout 7 files agents by when they were last heard from: a layout-6 database gets
/// the index at open, also when the filing was stopped after its first agent, and the
/// sweep finds its silent agents through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_6_database_files_its_agents_for_the_sweep_and_an_interrupted_filing_goes_on() {
    for interrupted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let o = org("A");
        {
            let store = RedbStore::open(dir.path()).unwrap();
            three_agents_reporting(&store, &o, fleet).await;
            store.make_layout_6_for_test(interrupted).await.unwrap();
            if interrupted {
                let problems = store.check().await.unwrap();
                assert!(
                    problems.iter().any(|p| p.starts_with("silent_watch")),
                    "{problems:?}"
                );
            }
        }
        let store = reopen(dir.path());
        assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
        let now = Utc::now();
        assert!(
            store
                .sweep_silent_agents(now - chrono::Duration::hours(1), now, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        let marked = store
            .sweep_silent_agents(now + chrono::Duration::seconds(1), now, usize::MAX)
            .await
            .unwrap();
        assert_eq!(marked.len(), 3, "interrupted: {interrupted}");
        assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
    }
}

/// One agent that reported [`fleet`] 100 days before `now` and nothing 95 days before:
/// its five servers are dormant and past a 90-day retention, with their alerts.
async fn a_fleet_past_its_retention(store: &dyn Store, now: DateTime<Utc>) -> Org {
    let days = |d: i64| now - chrono::Duration::days(d);
    let (o, a) = one_agent_on(store).await;
    store
        .apply_report(o.id, a.id, report_at(fleet(), days(100)))
        .await
        .unwrap();
    store
        .apply_report(o.id, a.id, report_at(Vec::new(), days(95)))
        .await
        .unwrap();
    o
}

/// Layout 8 lists each server's alerts: a layout-7 database gets the lists at open,
/// also when the listing was stopped after its first alert, and retention then finds
/// through them the alerts of the servers it deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_7_database_lists_its_servers_alerts_and_an_interrupted_listing_goes_on() {
    for interrupted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let days = |d: i64| now - chrono::Duration::days(d);
        let (o, gone_alerts) = {
            let store = RedbStore::open(dir.path()).unwrap();
            let o = a_fleet_past_its_retention(&store, now).await;
            let alerts = every_alert(&store, o.id).await;
            assert!(alerts.iter().filter(|al| al.server_id.is_some()).count() >= 2);
            store.make_layout_7_for_test(interrupted).await.unwrap();
            let problems = store.check().await.unwrap();
            assert!(
                problems.iter().any(|p| p.starts_with("alerts_of_server")),
                "{problems:?}"
            );
            (o, alerts.len() as u64)
        };
        let store = reopen(dir.path());
        assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
        let (servers, alerts, _) = store
            .prune_dormant_servers(days(90), None, 10)
            .await
            .unwrap();
        assert_eq!(servers, 5, "interrupted: {interrupted}");
        assert_eq!(alerts, gone_alerts, "interrupted: {interrupted}");
        assert!(every_alert(&store, o.id).await.is_empty());
        assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
    }
}

/// An alert record that cannot be read does not stop retention: the servers and their
/// other alerts go, it stays (with its entry), and `check` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_goes_on_past_an_alert_that_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let o = a_fleet_past_its_retention(&store, now).await;
    let alerts = every_alert(&store, o.id).await;
    assert!(alerts.len() >= 2);
    store
        .garble_alert_for_test(o.id, alerts[0].id)
        .await
        .unwrap();
    let (servers, removed, _) = store
        .prune_dormant_servers(days(90), None, 10)
        .await
        .unwrap();
    assert_eq!((servers, removed), (5, alerts.len() as u64 - 1));
    let problems = store.check().await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains("cannot be read")),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_without_a_census_gets_one_and_an_interrupted_build_goes_on() {
    for counted in [0, 3] {
        let dir = tempfile::tempdir().unwrap();
        let o = org("A");
        let expected = {
            let store = RedbStore::open(dir.path()).unwrap();
            three_agents_reporting(&store, &o, fleet).await;
            let expected = census_now(&store, o.id).await;
            assert_eq!(expected, recount(&store, o.id).await);
            store.make_layout_2_for_test(counted).await.unwrap();
            expected
        };
        let store = reopen(dir.path());
        assert_eq!(
            census_now(&store, o.id).await,
            expected,
            "counted {counted} before"
        );
    }
}

/// Everything a reader sees of organisation `o`, for comparing a database before and
/// after an upgrade.
async fn everything(store: &dyn Store, o: OrgId, email: &str) -> String {
    let servers = store
        .list_servers(
            o,
            ServerQuery {
                page_size: 1000,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    let mut histories = Vec::new();
    for s in &servers.items {
        histories.push(store.server_changes(o, s.id).await.unwrap());
    }
    let audit = store
        .list_audit(
            o,
            crate::store::AuditQuery {
                page: 1,
                page_size: 1000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    format!(
        "{:?}\n{:?}\n{histories:?}\n{audit:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        store.get_org(o).await.unwrap(),
        servers,
        store.list_agents(o).await.unwrap(),
        store.find_user_by_email(email).await.unwrap(),
        store.list_enroll_secrets(o).await.unwrap(),
        store.list_api_tokens(o, None).await.unwrap(),
        store.server_counts(o).await.unwrap(),
        store.top_risks(o, 10).await.unwrap(),
        census_now(store, o).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_database_is_made_compact_and_an_interrupted_conversion_goes_on() {
    for interrupted in [
        None,
        Some("servers"),
        Some("server_changes"),
        Some("census_members"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = org("A");
        let expected = {
            let store = RedbStore::open(dir.path()).unwrap();
            let admin = user(&o, "a@a.example", Role::Admin);
            store
                .create_org_with_admin(o.clone(), admin.clone(), true)
                .await
                .unwrap();
            let now = Utc::now();
            store
                .create_api_token(crate::model::ApiToken {
                    id: mcpwatch_protocol::ids::ApiTokenId::new(),
                    org_id: o.id,
                    user_id: admin.id,
                    name: "ci".into(),
                    role: Role::Analyst,
                    token_hash: [7; 32],
                    token_prefix: "mcp_pat_AbCd".into(),
                    created_at: now,
                    expires_at: now + chrono::Duration::days(1),
                    last_used_at: Some(now),
                })
                .await
                .unwrap();
            for n in 1..=3 {
                let mut a = agent(&o, n);
                a.facts.machine.os_name = Some(format!("Linux {n}"));
                a.last_seen_at = Some(now);
                store.create_agent(a.clone()).await.unwrap();
                store
                    .apply_report(o.id, a.id, report(pinned_fleet("1.0.0")))
                    .await
                    .unwrap();
                let mut moved = pinned_fleet("1.0.0");
                moved[3].args.push("--changed".into());
                store.apply_report(o.id, a.id, report(moved)).await.unwrap();
            }
            let before = everything(&store, o.id, "a@a.example").await;
            assert_eq!(store.legacy_records_for_test().await.unwrap(), 0);
            store.make_layout_3_for_test(interrupted).await.unwrap();
            assert!(store.legacy_records_for_test().await.unwrap() > 0);
            // Readers take JSON records as well: a half-converted database is readable
            // (all but the census, whose member keys change with layout 5).
            let without_census = |s: &str| s[..s.rfind('\n').unwrap()].to_owned();
            assert_eq!(
                without_census(&everything(&store, o.id, "a@a.example").await),
                without_census(&before)
            );
            before
        };
        let store = reopen(dir.path());
        assert_eq!(store.legacy_records_for_test().await.unwrap(), 0);
        assert_eq!(
            everything(&store, o.id, "a@a.example").await,
            expected,
            "interrupted in {interrupted:?}"
        );
        census_goes_on_counting(&store, o.id).await;
    }
}

/// An audit entry of `o` with free-form details and every optional part.
fn audit_entry(o: OrgId, n: u32) -> crate::audit::Entry {
    use crate::audit::{Action, Actor, ActorKind, Entry, Target};
    Entry {
        id: mcpwatch_protocol::ids::AuditId::new(),
        organization_id: o,
        at: Utc::now(),
        actor: Actor {
            kind: ActorKind::ApiToken,
            id: Some(format!("token-{n}")),
            email: Some("a@a.example".into()),
            user_id: n.is_multiple_of(2).then(|| "owner".to_owned()),
        },
        action: Action::AgentEnrolled,
        target: Target {
            kind: "agent".into(),
            id: Some(format!("agent-{n}")),
        },
        source_ip: (!n.is_multiple_of(2)).then(|| "127.0.0.1".to_owned()),
        details: serde_json::json!({ "hostname": format!("host-{n}"), "nested": [1, { "x": null }] }),
    }
}

/// Layout 6 stores servers without their key's ids, their computed fingerprint and
/// their times whole, and audit entries compact: a layout-5 database (servers whole,
/// audit entries JSON) reads the same before, during (stopped after the servers) and
/// after the upgrade, and comes out smaller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_5_database_is_rewritten_shorter_and_an_interrupted_rewrite_goes_on() {
    for interrupted in [
        None,
        Some("servers"),
        Some("agent_servers"),
        Some("census_members"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let o = org("A");
        let bytes = |space: Vec<crate::store::TableSpace>, name: &str| {
            space
                .into_iter()
                .find(|t| t.table == name)
                .map(|t| t.stored_bytes)
                .unwrap()
        };
        let (expected, written) = {
            let store = RedbStore::open(dir.path()).unwrap();
            three_agents_reporting(&store, &o, fleet_with_a_user).await;
            let a = store.list_agents(o.id).await.unwrap()[0].clone();
            let mut moved = pinned_fleet("1.0.0");
            moved[3].args.push("--changed".into());
            store.apply_report(o.id, a.id, report(moved)).await.unwrap();
            for n in 0..4 {
                store.record_audit(audit_entry(o.id, n)).await.unwrap();
            }
            let before = everything(&store, o.id, "a@a.example").await;
            let new = store.space().await.unwrap();
            assert_eq!(store.legacy_records_for_test().await.unwrap(), 0);
            store.make_layout_5_for_test(interrupted).await.unwrap();
            assert!(store.legacy_records_for_test().await.unwrap() > 0);
            // Readable meanwhile: all but the census while its member keys are rewritten
            // (the rewrite happens at open, before any read).
            let without_census = |s: &str| s[..s.rfind('\n').unwrap()].to_owned();
            let during = everything(&store, o.id, "a@a.example").await;
            if interrupted == Some("census_members") {
                assert_eq!(without_census(&during), without_census(&before));
            } else {
                assert_eq!(during, before);
            }
            let old = store.space().await.unwrap();
            let servers = store
                .list_servers(o.id, ServerQuery::default())
                .await
                .unwrap();
            let per_server = |space: &Vec<crate::store::TableSpace>| {
                bytes(space.clone(), "servers") / servers.total
            };
            if interrupted.is_none() {
                assert!(
                    per_server(&old) >= per_server(&new) + 2 * 16 + 32,
                    "ids and fingerprint left out: {} then {}",
                    per_server(&old),
                    per_server(&new)
                );
                assert!(bytes(old.clone(), "audit") > bytes(new.clone(), "audit"));
            }
            (before, new)
        };
        let store = reopen(dir.path());
        assert_eq!(store.legacy_records_for_test().await.unwrap(), 0);
        assert_eq!(
            everything(&store, o.id, "a@a.example").await,
            expected,
            "interrupted in {interrupted:?}"
        );
        assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
        let upgraded = store.space().await.unwrap();
        for table in ["servers", "audit", "agent_servers"] {
            assert_eq!(
                bytes(upgraded.clone(), table),
                bytes(written.clone(), table)
            );
        }
        census_goes_on_counting(&store, o.id).await;
    }
}

/// PostgreSQL counts queued census changes in the order they were made: while another
/// transaction holds the oldest change (a server's addition), a drain waits for it
/// instead of counting the server's removal first (which would leave it counted for
/// good, counts never going below zero).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_census_drain_waits_for_an_older_change_another_transaction_holds() {
    let Some(options) = super::test_pg::fresh_options().await else {
        return;
    };
    let url = options.url.clone();
    let o = org("A");
    let store = super::postgres::PgStore::connect(&options).await.unwrap();
    three_agents_reporting(&store, &o, fleet).await;
    for a in store.list_agents(o.id).await.unwrap() {
        store
            .apply_report(o.id, a.id, report(Vec::new()))
            .await
            .unwrap();
    }
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute("BEGIN").await.unwrap();
    let held = client
        .query(
            "SELECT seq FROM census_queue ORDER BY seq LIMIT 1 FOR UPDATE",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    let (counted, ()) = tokio::join!(census_now(&store, o.id), async {
        // Until the drain waits for the held row (or a deadline, should it not wait).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let waiting: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event_type = 'Lock' AND datname = current_database()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        client.batch_execute("ROLLBACK").await.unwrap();
    });
    assert_eq!(counted, Recount::new());
    // And once the held change is counted too.
    assert_eq!(census_now(&store, o.id).await, Recount::new());
    assert_eq!(recount(&store, o.id).await, Recount::new());
}

/// Schema 4 of the PostgreSQL store keeps when each agent that can become silent was
/// last heard from in an indexed column: a schema-3 database gets it from its records
/// at the upgrade (none for an agent marked silent or without servers), and the sweep
/// finds its silent agents through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_schema_3_gets_when_its_agents_were_last_heard_from() {
    let Some(options) = super::test_pg::fresh_options().await else {
        return;
    };
    let url = options.url.clone();
    let o = org("A");
    let heard = {
        let store = super::postgres::PgStore::connect(&options).await.unwrap();
        three_agents_reporting(&store, &o, fleet).await;
        // A name with a NUL in it (a laptop's to choose), which `jsonb` refuses.
        let nul = Agent {
            name: "laptop\0name".into(),
            ..agent(&o, 4)
        };
        store.create_agent(nul).await.unwrap();
        let marked = store
            .sweep_silent_agents(
                Utc::now() + chrono::Duration::seconds(1),
                Utc::now(),
                usize::MAX,
            )
            .await
            .unwrap();
        assert_eq!(marked.len(), 3);
        let heard = marked[0].1;
        let update = HeartbeatUpdate {
            facts: HostFacts::default(),
            seen_at: Utc::now(),
            bind_public_key: None,
        };
        store.record_heartbeat(o.id, heard, update).await.unwrap();
        heard
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP INDEX agents_by_silent_since; \
             ALTER TABLE agents DROP COLUMN silent_since; \
             DELETE FROM mcpwatch_schema WHERE version > 3",
        )
        .await
        .unwrap();
    let store = super::postgres::PgStore::connect(&options).await.unwrap();
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
    let watched: i64 = client
        .query_one(
            "SELECT count(*) FROM agents WHERE silent_since IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(watched, 1);
    let marked = store
        .sweep_silent_agents(
            Utc::now() + chrono::Duration::seconds(1),
            Utc::now(),
            usize::MAX,
        )
        .await
        .unwrap();
    assert_eq!(marked, vec![(o.id, heard)]);
}

/// Schema 2 of the PostgreSQL store takes the organisation·group prefix off census
/// member keys, schema 3 shortens the hosts in them: a census counted with schema 1's or
/// schema 2's keys reads and counts on the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_census_of_schema_1_or_2_goes_on_counting_after_the_upgrade() {
    for schema in [1, 2] {
        let Some(options) = super::test_pg::fresh_options().await else {
            return;
        };
        let url = options.url.clone();
        let o = org("A");
        let (expected, servers) = {
            let store = super::postgres::PgStore::connect(&options).await.unwrap();
            three_agents_reporting(&store, &o, fleet_with_a_user).await;
            let servers = store
                .list_servers(
                    o.id,
                    ServerQuery {
                        page_size: 1000,
                        ..ServerQuery::default()
                    },
                )
                .await
                .unwrap()
                .items;
            (census_now(&store, o.id).await, servers)
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        // Back to schema 2: hosts whole in member keys.
        let short = client
            .execute(
                "DELETE FROM census_members \
                 WHERE length(member) > 8 AND get_byte(member, 8) IN (97, 117, 118)",
                &[],
            )
            .await
            .unwrap();
        assert!(short > 0);
        for (member, n) in crate::store::tally::members_with_whole_hosts(&servers) {
            let n = i64::try_from(n).unwrap();
            client
                .execute(
                    "INSERT INTO census_members (member, n) VALUES ($1, $2)",
                    &[&member, &n],
                )
                .await
                .unwrap();
        }
        if schema == 1 {
            // Back to schema 1: each member key with its row's organisation and group first.
            let lengthened = client
                .execute(
                    "UPDATE census_members m SET member = p.prefix || m.member \
                     FROM (SELECT uuid_send(org) || set_byte('\\x00'::bytea, 0, grp) AS prefix, \
                                  substring(sha256(uuid_send(org) \
                                                   || set_byte('\\x00'::bytea, 0, grp) \
                                                   || key || '\\x00'::bytea) FOR 8) AS hash \
                           FROM census) p \
                     WHERE substring(m.member FOR 8) = p.hash",
                    &[],
                )
                .await
                .unwrap();
            assert!(lengthened > 0);
        }
        client
            .execute("DELETE FROM mcpwatch_schema WHERE version > $1", &[&schema])
            .await
            .unwrap();
        let store = super::postgres::PgStore::connect(&options).await.unwrap();
        assert_eq!(
            census_now(&store, o.id).await,
            expected,
            "from schema {schema}"
        );
        census_goes_on_counting(&store, o.id).await;
    }
}

/// [`pinned_fleet`] with a server run by a named user (so that users are counted).
fn fleet_with_a_user() -> Vec<ServerRecord> {
    let mut servers = pinned_fleet("1.0.0");
    servers[1].os_user = Some("alice".into());
    servers
}

/// After an upgrade of the census's member keys, it counts on from them: an agent
/// drops servers and changes its pinned version, another leaves; the census equals a
/// full recount.
async fn census_goes_on_counting(store: &dyn Store, o: OrgId) {
    let agents = store.list_agents(o).await.unwrap();
    let mut fewer = pinned_fleet("2.0.0");
    fewer.truncate(3);
    store
        .apply_report(o, agents[0].id, report(fewer))
        .await
        .unwrap();
    store
        .apply_report(o, agents[1].id, report(Vec::new()))
        .await
        .unwrap();
    assert_eq!(census_now(store, o).await, recount(store, o).await);
}

/// [`fleet`] with its first server launching a pinned package.
fn pinned_fleet(version: &str) -> Vec<ServerRecord> {
    let mut servers = fleet();
    servers[0].package = Some(mcpwatch_protocol::server::Package {
        ecosystem: "npm".into(),
        name: "pinned".into(),
        version: Some(version.into()),
    });
    servers
}

/// A report received at `at`.
fn report_at(servers: Vec<ServerRecord>, at: DateTime<Utc>) -> ReportInput {
    ReportInput {
        received_at: at,
        ..report(servers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_what_is_old_and_keeps_counts_and_indexes_right() {
    for backend in backends().await {
        retention_deletes_exactly_what_is_old_and_keeps_counts_and_indexes_right_on(
            backend.store.as_ref(),
        )
        .await;
    }
}

async fn retention_deletes_exactly_what_is_old_and_keeps_counts_and_indexes_right_on(
    store: &dyn Store,
) {
    let (o, a) = one_agent_on(store).await;
    let other = agent(&o, 2);
    store.create_agent(other.clone()).await.unwrap();
    assert_eq!(store.agent_count(o.id).await.unwrap(), 2);
    assert_eq!(
        store
            .agent_count(mcpwatch_protocol::ids::OrgId::new())
            .await
            .unwrap(),
        0
    );
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let all = fleet();
    // 100 days ago: the whole fleet; 95 days ago: only "time" and "memory" stay.
    store
        .apply_report(o.id, a.id, report_at(all.clone(), days(100)))
        .await
        .unwrap();
    store
        .apply_report(o.id, a.id, report_at(all[3..].to_vec(), days(95)))
        .await
        .unwrap();
    // The other agent: root-fs went dormant 10 days ago (recent: kept).
    store
        .apply_report(o.id, other.id, report_at(all[..1].to_vec(), days(20)))
        .await
        .unwrap();
    store
        .apply_report(o.id, other.id, report_at(Vec::new(), days(10)))
        .await
        .unwrap();
    let alerts_before = store.open_alert_count(o.id).await.unwrap();
    assert!(alerts_before >= 2, "the critical servers raised alerts");
    // Which servers go (the first agent's dormant ones), and an alert about one of them
    // dismissed first: it goes with its server too.
    let going: Vec<_> = first_page(store, o.id)
        .await
        .items
        .into_iter()
        .filter(|s| {
            s.agent_id == a.id
                && ["root-fs", "home-fs", "postgres"].contains(&s.record.server_name.as_str())
        })
        .map(|s| s.id)
        .collect();
    assert_eq!(going.len(), 3);
    let about_going = |all: &[crate::model::Alert]| {
        all.iter()
            .filter(|al| al.server_id.is_some_and(|id| going.contains(&id)))
            .count()
    };
    let all_before = every_alert(store, o.id).await;
    let dismissed = all_before
        .iter()
        .find(|al| al.server_id.is_some_and(|id| going.contains(&id)))
        .expect("a server that goes has an alert");
    store
        .dismiss_alert(
            o.id,
            dismissed.id,
            mcpwatch_protocol::ids::UserId::new(),
            now,
        )
        .await
        .unwrap();
    let kept_alerts = all_before.len() - about_going(&all_before);
    assert!(kept_alerts >= 1, "the other agent's root-fs has its alert");
    // Small batches: one agent per transaction.
    let (mut servers, mut alerts, mut cursor) = (0, 0, None);
    loop {
        let (s, al, next) = store
            .prune_dormant_servers(days(90), cursor, 1)
            .await
            .unwrap();
        (servers, alerts) = (servers + s, alerts + al);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        servers, 3,
        "root-fs, home-fs and postgres of the first agent"
    );
    let left: Vec<String> = first_page(store, o.id)
        .await
        .items
        .iter()
        .map(|s| format!("{}:{}", s.agent_id == a.id, s.record.server_name))
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["false:root-fs", "true:memory", "true:time"]);
    assert_eq!(
        store.open_alert_count(o.id).await.unwrap(),
        alerts_before - alerts,
        "the open alerts that went (the one dismissed before was open then)"
    );
    // Exactly the alerts about the servers that went, open or dismissed, went.
    let all_after = every_alert(store, o.id).await;
    assert_eq!(about_going(&all_after), 0);
    assert_eq!(all_after.len(), kept_alerts);
    assert_eq!(alerts as usize, all_before.len() - kept_alerts);
    // Counts and indexes agree with a full recount; the dashboard's counts with the list.
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
    let counts = store.server_counts(o.id).await.unwrap();
    assert_eq!(counts.total(), 3);
    assert_eq!(
        store.agent_count(o.id).await.unwrap(),
        2,
        "agents are never deleted by age"
    );
    // The history went too: a new report of a deleted server starts a new history.
    store
        .apply_report(o.id, a.id, report_at(all[..1].to_vec(), now))
        .await
        .unwrap();
    let again = first_page(store, o.id)
        .await
        .items
        .into_iter()
        .find(|s| s.agent_id == a.id && s.record.server_name == "root-fs")
        .unwrap();
    let history = store.server_changes(o.id, again.id).await.unwrap();
    assert_eq!(crate::model::history(&again, history).len(), 1);

    // Dismissed alerts go after their retention; open ones stay.
    let open = store.open_alert_count(o.id).await.unwrap();
    store
        .dismiss_all_alerts(o.id, mcpwatch_protocol::ids::UserId::new(), days(400))
        .await
        .unwrap();
    let (n, _) = store
        .prune_dismissed_alerts(days(365), None, 1000)
        .await
        .unwrap();
    assert_eq!(n, open);
    let (n, _) = store
        .prune_dismissed_alerts(days(365), None, 1000)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(store.check().await.unwrap(), Vec::<String>::new());
}

/// Every alert of `org`, open and dismissed.
async fn every_alert(store: &dyn Store, org: OrgId) -> Vec<crate::model::Alert> {
    store
        .list_alerts(
            org,
            crate::store::AlertQuery {
                dismissed: None,
                severity: None,
                sort: None,
                page: 1,
                page_size: 1000,
            },
        )
        .await
        .unwrap()
        .items
}

/// Text a laptop or a person wrote is stored as given, whatever it holds (NULs and
/// other control characters, which PostgreSQL's text refuses), and found again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_nul_and_control_characters_is_stored_as_given() {
    for backend in backends().await {
        hostile_text_on(backend.store.as_ref()).await;
    }
}

async fn hostile_text_on(store: &dyn Store) {
    let (o, a) = one_agent_on(store).await;
    let name = "evil\0name\u{1b}[31m";
    let mut record = server(name, &["-y", "pkg\0@1.0.0"]);
    record.env_vars = vec!["TOKEN\0X".into()];
    let mut input = report(vec![record]);
    input.facts.hostname = Some("host\0name".into());
    store.apply_report(o.id, a.id, input).await.unwrap();
    let found = store
        .list_servers(
            o.id,
            ServerQuery {
                search: Some("l\0n".into()),
                sort: Some((ServerSort::Hostname, Direction::Asc)),
                page: 1,
                page_size: 10,
                ..ServerQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    assert_eq!(found.items[0].record.server_name, name);
    assert_eq!(found.items[0].record.args[1], "pkg\0@1.0.0");
    assert_eq!(
        store
            .get_agent(o.id, a.id)
            .await
            .unwrap()
            .facts
            .hostname
            .as_deref(),
        Some("host\0name")
    );
    let mut policy = store.get_policy(o.id).await.unwrap();
    policy.scoring.blocked.push("bad\0pkg".into());
    let stored = store.put_policy(o.id, policy).await.unwrap();
    assert_eq!(
        store.get_policy(o.id).await.unwrap().scoring.blocked,
        stored.scoring.blocked
    );
    let census = store
        .census(
            o.id,
            CensusQuery {
                group: crate::census::Group::ServerName,
                by_hosts: true,
                direction: Direction::Desc,
                page: 1,
                page_size: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(census.total, 1);
}
