use super::*;
use std::io::{BufRead, Read, Write};

fn auth(s: &DavServer) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", s.password()));
    format!("Basic {b}")
}

fn url(s: &DavServer, id: &str) -> String {
    format!("{}/{}/{id}", s.endpoint("127.0.0.1"), blob_prefix(id))
}

fn status<T>(r: Result<T, ureq::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Sends raw bytes on one connection and returns everything the server answered.
fn raw(s: &DavServer, request: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", s.port())).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(request).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn the_prefix_is_the_first_byte_of_the_ids_sha1() {
    // sha1("abc") = a9993e36…
    assert_eq!(blob_prefix("abc"), "a9");
    assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

#[test]
fn put_get_head_delete_round_trip_as_the_dav_client_does() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(&dir.path().join("blobs")).unwrap();
    let id = "0b7e3a5c-1111-4222-8333-444455556666";
    let a = auth(&s);
    let body = vec![7u8; 300_000];
    let r = ureq::put(&url(&s, id))
        .set("Authorization", &a)
        .send_bytes(&body);
    assert_eq!(r.unwrap().status(), 201);
    assert_eq!(s.ids(), vec![id.to_string()]);
    assert_eq!(s.get(id).unwrap(), body);

    let r = ureq::get(&url(&s, id))
        .set("Authorization", &a)
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = Vec::new();
    r.into_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, body);

    let r = ureq::head(&url(&s, id))
        .set("Authorization", &a)
        .call()
        .unwrap();
    assert_eq!(r.header("Content-Length"), Some("300000"));

    let r = ureq::delete(&url(&s, id)).set("Authorization", &a).call();
    assert_eq!(r.unwrap().status(), 204);
    assert!(s.ids().is_empty() && s.get(id).is_none());
    // Absent: HEAD and GET 404 (the client's "not found"), DELETE 404 (which it accepts).
    assert_eq!(
        status(ureq::head(&url(&s, id)).set("Authorization", &a).call()),
        404
    );
    assert_eq!(
        status(ureq::get(&url(&s, id)).set("Authorization", &a).call()),
        404
    );
    assert_eq!(
        status(ureq::delete(&url(&s, id)).set("Authorization", &a).call()),
        404
    );
    let log = s.log().join("\n");
    assert!(
        log.contains(&format!("PUT /{}/{id} 201", blob_prefix(id))),
        "{log}"
    );
    assert!(log.contains("404"), "{log}");
}

#[test]
fn requests_without_the_password_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let (id, _) = s.put(b"secret").unwrap();
    assert_eq!(status(ureq::get(&url(&s, &id)).call()), 401);
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:nope"));
    let r = ureq::get(&url(&s, &id))
        .set("Authorization", &format!("Basic {wrong}"))
        .call();
    assert_eq!(status(r), 401);
    let r = ureq::put(&url(&s, "new")).send_bytes(b"x");
    assert_eq!(status(r), 401);
    assert_eq!(s.ids(), vec![id.clone()]);
    // A refused body is read and dropped: the connection goes on with the next request.
    let p = blob_prefix(&id);
    let req = format!(
        "PUT /{p}/{id} HTTP/1.1\r\nContent-Length: 5\r\n\r\nHELLO\
         GET /{p}/{id} HTTP/1.1\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        auth(&s)
    );
    let out = raw(&s, req.as_bytes());
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(out.ends_with("\r\n\r\nsecret"), "{out}");
}

#[test]
fn test_side_put_and_settings_name_what_the_agent_needs() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let (id, sha) = s.put(b"hello").unwrap();
    assert_eq!(sha, sha1_hex(b"hello"));
    assert_eq!(id.len(), 36);
    assert!(valid_id(&id));
    let got = ureq::get(&url(&s, &id))
        .set("Authorization", &auth(&s))
        .call()
        .unwrap();
    assert_eq!(got.into_string().unwrap(), "hello");
    let v = s.settings("10.0.2.2");
    assert_eq!(v["provider"], "dav");
    assert_eq!(
        v["options"]["endpoint"],
        format!("http://10.0.2.2:{}", s.port())
    );
    assert_eq!(v["options"]["user"], USER);
    assert_eq!(v["options"]["password"], s.password());
    assert_eq!(s.password().len(), 32);
}

#[test]
fn bad_ids_and_traversal_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("blobs");
    let s = DavServer::start(&store).unwrap();
    fs::write(dir.path().join("outside"), b"x").unwrap();
    let a = auth(&s);
    for target in [
        "/../outside".to_string(),
        format!("/{}/..", blob_prefix("..")),
        format!("/{}/.hidden", blob_prefix(".hidden")),
        "/00/abc".to_string(), // wrong prefix
        "/abc".to_string(),
        format!("/{}/a%2F..%2Foutside", blob_prefix("a%2F..%2Foutside")),
        format!("/{}/{}", blob_prefix("x"), "x/../../outside"),
    ] {
        let req =
            format!("GET {target} HTTP/1.1\r\nAuthorization: {a}\r\nConnection: close\r\n\r\n");
        let out = raw(&s, req.as_bytes());
        assert!(out.starts_with("HTTP/1.1 404"), "{target}: {out}");
        let req = format!(
            "PUT {target} HTTP/1.1\r\nAuthorization: {a}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        );
        let out = raw(&s, req.as_bytes());
        assert!(out.starts_with("HTTP/1.1 404"), "{target}: {out}");
    }
    assert!(s.ids().is_empty());
    assert_eq!(fs::read(dir.path().join("outside")).unwrap(), b"x");
    assert!(s.path("../outside").is_none());
}

#[test]
fn chunked_bodies_and_keep_alive_on_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let a = auth(&s);
    let id = "chunky";
    let p = blob_prefix(id);
    let req = format!(
        "PUT /{p}/{id} HTTP/1.1\r\nAuthorization: {a}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n\
         GET /{p}/{id} HTTP/1.1\r\nAuthorization: {a}\r\nConnection: close\r\n\r\n"
    );
    let out = raw(&s, req.as_bytes());
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(
        out.contains("HTTP/1.1 200 OK") && out.ends_with("hello world"),
        "{out}"
    );
    assert_eq!(s.get(id).unwrap(), b"hello world");
}

#[test]
fn an_announced_body_over_the_cap_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let a = auth(&s);
    let p = blob_prefix("big");
    let req = format!(
        "PUT /{p}/big HTTP/1.1\r\nAuthorization: {a}\r\nContent-Length: {}\r\n\r\nabc",
        BODY_MAX + 1
    );
    let out = raw(&s, req.as_bytes());
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert!(s.ids().is_empty());
    // No temp file is left behind.
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn stops_listening_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let port = s.port();
    // An idle keep-alive connection must not hold the drop up.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    drop(s);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    let _ = idle.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut r = std::io::BufReader::new(idle);
    let mut line = String::new();
    let _ = r.read_line(&mut line);
}

/// The real client: `PISTEMCELL_DAVCLI=/path/to/bosh-blobstore-dav` (any architecture the host
/// runs, e.g. an ARM build through binfmt) runs it against the server as the agent does.
#[test]
fn the_real_dav_client_round_trips_when_given() {
    let Some(cli) = std::env::var_os("PISTEMCELL_DAVCLI") else {
        eprintln!("skipped: set PISTEMCELL_DAVCLI to a bosh-blobstore-dav binary to run it");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = DavServer::start(&tmp.path().join("blobs")).unwrap();
    let config = tmp.path().join("blobstore-dav.json");
    let options = s.settings("127.0.0.1")["options"].clone();
    fs::write(&config, options.to_string()).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(&cli)
            .arg("-c")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };
    let src = tmp.path().join("src");
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(&src, &body).unwrap();
    let id = "5f0c2a8e-9b1d-4e3f-a6c7-d8e9f0a1b2c3";
    let os = |s: &str| std::ffi::OsString::from(s);
    let out = run(&[&os("put"), src.as_os_str(), &os(id)]);
    assert!(
        out.status.success(),
        "put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.get(id).unwrap(), body);
    let out = run(&[&os("exists"), &os(id)]);
    assert!(
        out.status.success(),
        "exists: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dst = tmp.path().join("dst");
    let out = run(&[&os("get"), &os(id), dst.as_os_str()]);
    assert!(
        out.status.success(),
        "get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&dst).unwrap(), body);
    let out = run(&[&os("delete"), &os(id)]);
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.ids().is_empty());
    let out = run(&[&os("exists"), &os(id)]);
    assert!(!out.status.success(), "exists after delete succeeded");
    // Deleting what is absent is fine for the client.
    assert!(run(&[&os("delete"), &os(id)]).status.success());
    let mut bad = options.clone();
    bad["password"] = "wrong".into();
    fs::write(&config, bad.to_string()).unwrap();
    let out = run(&[&os("put"), src.as_os_str(), &os(id)]);
    assert!(!out.status.success(), "put with a wrong password succeeded");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("401"),
        "the client should report the 401: {said}"
    );
    assert!(s.ids().is_empty());
    let log = s.log().join("\n");
    assert!(log.contains("401"), "{log}");
}

#[test]
fn tgz_names_lists_a_stored_tarball_and_refuses_other_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = DavServer::start(dir.path()).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for name in ["./", "./pstc-web/", "./pstc-web/pre-start.stdout.log"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &[][..]).unwrap();
    }
    let tgz = b.into_inner().unwrap().finish().unwrap();
    let (id, _) = s.put(&tgz).unwrap();
    assert_eq!(
        s.tgz_names(&id).unwrap(),
        ["pstc-web/", "pstc-web/pre-start.stdout.log"]
    );
    let (junk, _) = s.put(b"not a tarball").unwrap();
    let e = s.tgz_names(&junk).unwrap_err().to_string();
    assert!(
        e.contains(&junk) && e.contains("not a readable gzipped tar"),
        "{e}"
    );
    let e = s.tgz_names("absent").unwrap_err().to_string();
    assert!(e.contains("no such blob"), "{e}");
}
