//! The test release's file contents: the C program, its Makefile and `packaging` script (the
//! package `pstc-hello`), and the job `pstc-web`'s monit file and scripts.

/// The package's C program: `pstc-hello ADDR PORT [FILE]` listens on ADDR:PORT and answers
/// each connection with one line, `pstc-hello CONTENTS` (the first line of FILE) or
/// `pstc-hello none` (no FILE, or none there), then closes it.
pub const HELLO_C: &str = r#"/* pstc-hello: pistemcell's deploy-proof program. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void answer(int c, const char *file) {
    char line[512] = "none";
    FILE *f = file ? fopen(file, "r") : NULL;
    if (f) {
        if (!fgets(line, sizeof line, f)) strcpy(line, "none");
        fclose(f);
        line[strcspn(line, "\r\n")] = 0;
    }
    dprintf(c, "pstc-hello %s\n", line);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: pstc-hello ADDR PORT [FILE]\n");
        return 2;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        fprintf(stderr, "pstc-hello: bad address %s\n", argv[1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("pstc-hello: listen");
        return 1;
    }
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        answer(c, argc == 4 ? argv[3] : NULL);
        close(c);
    }
}
"#;

/// The package's Makefile: `make` builds, `make install PREFIX=DIR` installs to `DIR/bin`.
pub const MAKEFILE: &str = "CC ?= cc\nCFLAGS ?= -O2\n\npstc-hello: hello.c\n\t$(CC) $(CFLAGS) -Wall -o $@ hello.c\n\ninstall: pstc-hello\n\tmkdir -p $(PREFIX)/bin\n\tcp pstc-hello $(PREFIX)/bin/pstc-hello\n\n.PHONY: install\n";

/// The package's `packaging` script; the agent runs it as `bash -x packaging` in the unpacked
/// source with `BOSH_COMPILE_TARGET` and `BOSH_INSTALL_TARGET` set (agent/compiler).
pub const PACKAGING: &str = r#"# pstc-hello: compile the C program with make and install it.
set -e
cd "${BOSH_COMPILE_TARGET:?}/pstc-hello"
make
make install PREFIX="${BOSH_INSTALL_TARGET:?}"
"#;

/// The job's monit file.
pub const MONIT: &str = r#"check process pstc-web
  with pidfile /var/vcap/sys/run/pstc-web/pid
  start program "/var/vcap/jobs/pstc-web/bin/ctl start"
  stop program "/var/vcap/jobs/pstc-web/bin/ctl stop"
  group vcap
"#;

/// The job's `bin/ctl`: `start` writes the persistent marker on the first start only and runs
/// the program in the background; `stop` kills it.
pub const CTL: &str = r#"#!/bin/bash
# pstc-web: start or stop pstc-hello under monit.
set -e
RUN_DIR=/var/vcap/sys/run/pstc-web
LOG_DIR=/var/vcap/sys/log/pstc-web
STORE_DIR=/var/vcap/store/pstc-web
PIDFILE=$RUN_DIR/pid
case "$1" in
  start)
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$STORE_DIR"
    # Idempotent, as a job's ctl must be: monit may start a job that already runs.
    if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "$(date +%FT%T) start: already running as $(cat "$PIDFILE")" >> "$LOG_DIR/ctl.log"
      exit 0
    fi
    if [ ! -e "$STORE_DIR/marker" ]; then
      # The boot id names the boot that made it: after a reboot it must be unchanged.
      echo "first-start $(cat /proc/sys/kernel/random/boot_id)" > "$STORE_DIR/marker.tmp"
      mv "$STORE_DIR/marker.tmp" "$STORE_DIR/marker"
    fi
    PORT=$(cat /var/vcap/jobs/pstc-web/config/port)
    /var/vcap/packages/pstc-hello/bin/pstc-hello 0.0.0.0 "$PORT" "$STORE_DIR/marker" \
      >> "$LOG_DIR/pstc-web.stdout.log" 2>> "$LOG_DIR/pstc-web.stderr.log" &
    echo $! > "$PIDFILE"
    sleep 1
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "$(date +%FT%T) start: pstc-hello exited at once: $(tail -n 3 "$LOG_DIR/pstc-web.stderr.log" | tr '\n' ' ')" >> "$LOG_DIR/ctl.log"
      sync
      exit 1
    fi
    echo "$(date +%FT%T) start: running as $(cat "$PIDFILE"), marker $(cat "$STORE_DIR/marker")" >> "$LOG_DIR/ctl.log"
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    echo "usage: ctl start|stop" >&2
    exit 1
    ;;
esac
"#;

/// The job's `bin/pre-start` (its output lands in /var/vcap/sys/log/pstc-web/pre-start.stdout.log).
pub const PRE_START: &str = r#"#!/bin/bash
set -e
mkdir -p /var/vcap/sys/run/pstc-web
date +%s > /var/vcap/sys/run/pstc-web/pre-start.done
echo "pstc-web pre-start ran"
"#;

/// The job's `bin/drain`: prints `0` (drain done, no wait), the integer the agent parses.
pub const DRAIN: &str = "#!/bin/bash\necho 0\n";
