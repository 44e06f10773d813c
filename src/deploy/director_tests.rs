use super::*;
use std::cell::RefCell;
use std::collections::VecDeque;

/// Replays answers in the shapes bosh-agent sends, recording each call.
struct Fake {
    answers: RefCell<VecDeque<Result<Value, CallError>>>,
    calls: RefCell<Vec<(String, Value)>>,
}

impl Fake {
    fn new(answers: Vec<Result<Value, CallError>>) -> Fake {
        Fake {
            answers: RefCell::new(answers.into()),
            calls: RefCell::new(Vec::new()),
        }
    }
    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.borrow().clone()
    }
}

impl AgentCall for Fake {
    fn call(&self, method: &str, args: Value) -> Result<Value, CallError> {
        self.calls.borrow_mut().push((method.to_string(), args));
        self.answers
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(CallError::Transport("no more answers".into())))
    }
}

fn running(id: &str) -> Result<Value, CallError> {
    Ok(json!({"agent_task_id": id, "state": "running"}))
}

fn director(f: &Fake) -> Director<&Fake> {
    Director::new(f).with_polling(Duration::ZERO, Duration::from_secs(60))
}

#[test]
fn an_async_action_is_polled_with_get_task_until_it_ends() {
    let f = Fake::new(vec![
        running("7"),
        running("7"),
        running("7"),
        Ok(json!({"result": {"blobstore_id": "b-1", "sha1": "abc"}})),
    ]);
    let blob = director(&f)
        .compile_package("src-1", "0123", "pstc-hello", "1.0", json!({}))
        .unwrap();
    assert_eq!(
        blob,
        BlobRef {
            blobstore_id: "b-1".into(),
            sha1: "abc".into()
        }
    );
    let calls = f.calls();
    assert_eq!(calls[0].0, "compile_package");
    assert_eq!(
        calls[0].1,
        json!(["src-1", "0123", "pstc-hello", "1.0", {}])
    );
    assert!(calls[1..]
        .iter()
        .all(|(m, a)| m == "get_task" && *a == json!(["7"])));
    assert_eq!(calls.len(), 4);
}

#[test]
fn a_failed_task_quotes_the_agents_message() {
    let msg = "Task 7 result: Compiling package pstc-hello: Running packaging script: exit 2";
    let f = Fake::new(vec![running("7"), Err(CallError::Exception(msg.into()))]);
    let e = director(&f)
        .compile_package("s", "d", "pstc-hello", "1", json!({}))
        .unwrap_err();
    assert!(matches!(&e, DirectorError::Agent { method, .. } if method == "compile_package"));
    assert!(e.to_string().contains(msg), "{e}");
}

#[test]
fn synchronous_actions_answer_directly() {
    let f = Fake::new(vec![
        Ok(json!("pong")),
        Ok(json!("started")),
        Ok(json!({
            "agent_id": "a-1", "job_state": "running", "deployment": "d",
            "processes": [{"name": "pstc-web", "state": "running", "uptime": {"secs": 3}}],
            "vm": {"name": "vm-1"}
        })),
    ]);
    let d = director(&f);
    d.ping().unwrap();
    d.start().unwrap();
    let st = d.get_state().unwrap();
    assert_eq!(
        (st.agent_id.as_str(), st.job_state.as_str()),
        ("a-1", "running")
    );
    assert_eq!(
        st.processes,
        vec![ProcessState {
            name: "pstc-web".into(),
            state: "running".into()
        }]
    );
    assert_eq!(st.raw["deployment"], "d");
    let methods: Vec<_> = f.calls().into_iter().map(|c| c.0).collect();
    assert_eq!(methods, ["ping", "start", "get_state"]);
}

#[test]
fn lifecycle_and_disk_actions_send_the_agents_argument_shapes() {
    let spec = json!({"deployment": "pstc"});
    let f = Fake::new(vec![
        running("1"),
        Ok(json!("applied")),
        running("2"),
        Ok(json!({})),
        running("3"),
        Ok(json!({})),
        running("4"),
        Ok(json!({})),
        running("5"),
        Ok(json!(0)),
        running("6"),
        Ok(json!("stopped")),
        running("7"),
        Ok(json!({"message": "Unmounted partition of {…}"})),
        running("8"),
        Ok(json!(["disk-1"])),
        running("9"),
        Ok(json!({"blobstore_id": "logs-1", "sha1": "sha256:aa;ff00"})),
        running("10"),
        Ok(json!("prepared")),
    ]);
    let d = director(&f);
    d.apply(&spec).unwrap();
    let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
    d.run_script("pre-start", &env).unwrap();
    d.add_persistent_disk("disk-1", &json!("/dev/vdc")).unwrap();
    d.mount_disk("disk-1").unwrap();
    assert_eq!(d.drain(&DrainKind::Shutdown).unwrap(), 0);
    d.stop().unwrap();
    assert!(d.unmount_disk("disk-1").unwrap().starts_with("Unmounted"));
    assert_eq!(d.list_disk().unwrap(), ["disk-1"]);
    let logs = d.fetch_logs("job", &[]).unwrap();
    assert_eq!(logs.blobstore_id, "logs-1");
    assert_eq!(logs.sha1_hex(), Some("ff00"));
    d.prepare(&spec).unwrap();
    let sent: Vec<_> = f
        .calls()
        .into_iter()
        .filter(|c| c.0 != "get_task")
        .collect();
    let want = [
        ("apply", json!([spec])),
        ("run_script", json!(["pre-start", {"env": {"A": "1"}}])),
        ("add_persistent_disk", json!(["disk-1", "/dev/vdc"])),
        ("mount_disk", json!(["disk-1"])),
        ("drain", json!(["shutdown"])),
        ("stop", json!([])),
        ("unmount_disk", json!(["disk-1"])),
        ("list_disk", json!([])),
        ("fetch_logs", json!(["job", []])),
        ("prepare", json!([spec])),
    ];
    assert_eq!(sent.len(), want.len());
    for ((m, a), (wm, wa)) in sent.iter().zip(want) {
        assert_eq!((m.as_str(), a), (wm, &wa));
    }
}

#[test]
fn unexpected_answers_and_transport_errors_are_named() {
    let f = Fake::new(vec![
        Ok(json!("pang")),
        running("1"),
        Ok(json!({"result": {}})),
        Err(CallError::Transport("connection refused".into())),
        Ok(json!({"agent_id": "x"})),
    ]);
    let d = director(&f);
    let e = d.ping().unwrap_err().to_string();
    assert!(
        e.contains("`ping`") && e.contains("\"pang\"") && e.contains("pong"),
        "{e}"
    );
    let e = d
        .compile_package("a", "b", "c", "d", json!({}))
        .unwrap_err();
    assert!(matches!(e, DirectorError::Shape { .. }), "{e}");
    let e = d.start().unwrap_err().to_string();
    assert!(
        e.contains("connection refused") && e.contains("still up"),
        "{e}"
    );
    let e = d.get_state().unwrap_err().to_string();
    assert!(e.contains("job_state"), "{e}");
}

#[test]
fn a_task_that_never_ends_times_out() {
    let f = Fake::new((0..1000).map(|_| running("9")).collect());
    let d = Director::new(&f).with_polling(Duration::from_millis(1), Duration::from_millis(20));
    let e = d.apply(&json!({})).unwrap_err();
    assert!(
        matches!(&e, DirectorError::Timeout { task, .. } if task == "9"),
        "{e}"
    );
}

#[test]
fn digests_yield_their_sha1() {
    let b = |s: &str| BlobRef {
        blobstore_id: "x".into(),
        sha1: s.into(),
    };
    assert_eq!(b("abc").sha1_hex(), Some("abc"));
    assert_eq!(b("sha256:00;sha1:abc").sha1_hex(), Some("abc"));
    assert_eq!(b("sha256:00").sha1_hex(), None);
}

#[test]
fn a_missed_poll_is_retried_but_not_forever() {
    let miss = || Err(CallError::Transport("timed out".into()));
    let f = Fake::new(vec![
        running("3"),
        miss(),
        miss(),
        running("3"),
        miss(),
        Ok(json!("applied")),
    ]);
    director(&f).apply(&json!({})).unwrap();
    let f = Fake::new(vec![running("3"), miss(), miss(), miss()]);
    let e = director(&f).apply(&json!({})).unwrap_err().to_string();
    assert!(e.contains("get_task 3") && e.contains("timed out"), "{e}");
}
