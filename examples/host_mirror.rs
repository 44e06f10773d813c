//! Prints the host's Debian mirror for a suite (default bookworm), as the Debian profile
//! would choose it; used by benches/bootstrap.sh.

fn main() {
    let suite = std::env::args().nth(1).unwrap_or_else(|| "bookworm".into());
    match pistemcell::mirror::from_host(std::path::Path::new("/etc/apt"), "debian", &suite) {
        Some(m) => println!("{m}"),
        None => {
            eprintln!("the host's apt sources have no `deb` line for {suite}");
            std::process::exit(1);
        }
    }
}
