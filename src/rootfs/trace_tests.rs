//! Tests of the strace reader.

use super::*;

/// What [`read`] makes of `trace` (strace's output for one command).
fn accesses(trace: &str) -> Accesses {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trace"), trace).unwrap();
    read(dir.path()).unwrap()
}

#[test]
fn lines_are_parsed_with_quoted_commas_and_fd_paths() {
    let c = parse_line(
        r#"openat(3</var/tmp/r/usr/lib>, "a,b\"c", O_RDONLY|O_CLOEXEC) = 4</var/tmp/r/usr/lib/a,b"c>"#,
    )
    .unwrap();
    assert_eq!(c.name, "openat");
    assert_eq!(c.args[0], "3</var/tmp/r/usr/lib>");
    assert_eq!(unquote(&c.args[1]).unwrap(), "a,b\"c");
    assert!(c.ret.starts_with('4'));
    let c = parse_line(
        r#"newfstatat(AT_FDCWD, "/x", 0x7ffd, 0) = -1 ENOENT (No such file or directory)"#,
    )
    .unwrap();
    assert!(c.ret.starts_with("-1 ENOENT"));
    assert_eq!(parse_line("+++ exited with 0 +++"), None);
    assert_eq!(unescape(r"a\303\251\x41\n"), "aéA\n");
    assert_eq!(join("/a/b", "../c/./d//e"), "/a/c/d/e");
    assert_eq!(join("/a", "/x/.."), "/");
}

#[test]
fn a_process_tree_is_followed_from_its_chroot_with_working_directories() {
    let a = accesses(
        r#"100 execve("/usr/sbin/chroot", ["chroot"], 0x1 /* 3 vars */) = 0
100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
100 chroot("/var/tmp/r") = 0
100 chdir("/") = 0
100 execve("/bin/sh", ["sh"], 0x2 /* 3 vars */) = 0
100 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3
100 chdir("/usr/share") = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD <unfinished ...>
101 execve("/usr/bin/find", ["find", "hooks"], 0x3 /* 3 vars */) = 0
100 <... clone resumed>) = 101
101 openat(AT_FDCWD, "hooks", O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_DIRECTORY) = 4
101 getdents64(4, 0x55 /* 3 entries */, 32768) = 80
101 openat(4, "udev", O_RDONLY) = 5
100 newfstatat(AT_FDCWD, "/boot/initrd.img-6", 0x7ffd, 0) = -1 ENOENT (No such file or directory)
101 openat(AT_FDCWD, "/boot/initrd.img-6.new", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3
101 renameat2(AT_FDCWD, "/boot/initrd.img-6.new", AT_FDCWD, "/boot/initrd.img-6", RENAME_NOREPLACE) = 0
101 +++ exited with 0 +++
100 vfork() = 102
102 chroot("/var/tmp/d") = 0
102 openat(AT_FDCWD, "/var/cache/ldconfig/aux-cache", O_RDONLY) = 3
102 openat(AT_FDCWD, "../../../../etc/x", O_RDONLY) = 4
100 +++ exited with 0 +++
"#,
    );
    let read: Vec<&str> = a.read.iter().map(String::as_str).collect();
    assert_eq!(
        read,
        [
            "/bin/sh",
            "/boot/initrd.img-6",
            "/etc/ld.so.cache",
            // Relative to a working directory outside the new root, as the kernel has it.
            "/etc/x",
            "/usr/bin/find",
            "/usr/share/hooks",
            "/usr/share/hooks/udev",
            // ldconfig -r: absolute paths inside the tree it chrooted into.
            "/var/tmp/d/var/cache/ldconfig/aux-cache",
        ]
    );
    assert_eq!(a.listed.iter().collect::<Vec<_>>(), ["/usr/share/hooks"]);
    assert_eq!(
        a.written.iter().collect::<Vec<_>>(),
        ["/boot/initrd.img-6", "/boot/initrd.img-6.new"]
    );
}

#[test]
fn copied_descriptors_name_what_the_original_named() {
    // rm -r as fts walks: each directory opened, moved to another number, worked from there.
    let a = accesses(
        r#"100 chroot("/var/tmp/r") = 0
100 openat(AT_FDCWD, "/var/tmp/x", O_RDONLY|O_DIRECTORY) = 4
100 openat(AT_FDCWD, "/usr/lib", O_RDONLY|O_DIRECTORY) = 3
100 fcntl(3, F_DUPFD_CLOEXEC, 3) = 5
100 newfstatat(5, "modules", 0x7ffd, AT_SYMLINK_NOFOLLOW) = 0
100 openat(5, "modules", O_RDONLY|O_DIRECTORY) = 3
100 fcntl(3, F_DUPFD_CLOEXEC, 3) = 4
100 unlinkat(4, "6.1", AT_REMOVEDIR) = 0
100 openat(4, "..", O_RDONLY|O_DIRECTORY) = 3
100 dup2(3, 6) = 6
100 readlinkat(6, "ld.so", 0x7ffd, 4096) = 5
100 fcntl(6, F_SETFD, FD_CLOEXEC) = 0
100 openat2(6, "firmware", {flags=O_RDONLY, resolve=0}, 24) = 7
100 dup(9) = 6
100 openat(6, "lost", O_RDONLY) = 8
"#,
    );
    let read: Vec<&str> = a.read.iter().map(String::as_str).collect();
    assert_eq!(
        read,
        [
            "/usr/lib",
            "/usr/lib/firmware",
            "/usr/lib/ld.so",
            "/usr/lib/modules",
            "/var/tmp/x",
        ]
    );
    // Not /var/tmp/x/6.1: fd 4 was replaced by the copy of the modules directory.
    assert_eq!(
        a.written.iter().collect::<Vec<_>>(),
        ["/usr/lib/modules/6.1"]
    );
}

#[test]
fn a_write_that_failed_is_a_probe() {
    // mkdir -p on a tree that exists: its EEXIST says /var is there, it wrote nothing.
    let a = accesses(
        r#"100 chroot("/var/tmp/r") = 0
100 mkdir("/var", 0777) = -1 EEXIST (File exists)
100 unlink("/etc/gone") = -1 ENOENT (No such file or directory)
100 mkdir("/var/new", 0777) = 0
"#,
    );
    assert_eq!(a.read.iter().collect::<Vec<_>>(), ["/etc/gone", "/var"]);
    assert_eq!(a.written.iter().collect::<Vec<_>>(), ["/var/new"]);
}
