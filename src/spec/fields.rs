//! The spec reference: one row per field, checked against the types and the README by tests.

/// Documentation of every spec field: (name, YAML type, default, description).
pub const FIELDS: &[(&str, &str, &str, &str)] = &[
    ("profile", "string", "debian-bookworm", "OS profile: debian-bookworm, raspbian-bookworm, raspbian-buster, ubuntu-trusty, ubuntu-jammy"),
    ("architecture", "armhf | arm64", "armhf", "target architecture"),
    ("cpu", "armv6 | armv7 | armv8", "armv6 on raspbian, armv7 on armhf, armv8 on arm64", "the oldest CPU the image must run on"),
    ("suite", "string", "the profile's suite", "archive suite"),
    ("components", "list of strings", "the profile's components", "archive components to read"),
    ("mirror", "URL", "the profile's mirror; Debian: the host's apt sources", "where packages come from (http, https or file://); --mirror overrides"),
    ("keyring", "path or URL", "the profile's key", "archive key file (binary or armored); its fingerprint must be pinned"),
    ("keyring_fingerprints", "list of strings", "the profile's fingerprints", "full fingerprints of the keys allowed to sign the archive"),
    ("archive_pin", "{release_sha256, date}", "none", "the signed Release the main archive must serve (from a stemcell's provenance.json); another stops the build naming both dates, unless --allow-archive-change"),
    ("extra_archives", "list of {name, mirror, suite, components, keyring: {location, fingerprints, allow_sha1}}", "the profile's (raspbian: Raspberry Pi's archive)", "archives read beside the main one, each verified by its own key; the highest version of a package wins"),
    ("variant", "required | minbase | important | {packages: [..]}", "minbase", "which packages the bootstrap installs (minbase = debootstrap --variant=minbase)"),
    ("packages", "list of strings", "[]", "extra packages installed on top of the variant"),
    ("infrastructure", "bakery | raw | warden", "bakery", "where the stemcell runs: agent settings and infrastructure stages"),
    ("stemcell", "{name, version}", "name bosh-pi-INFRA-PROFILE-ARCH, version \"0.0.1\"", "the stemcell's identity (version is a string)"),
    ("monit", "{version, source | deb | binary: {url | path, sha256}, skip_proof}", "version 5.2.5 from its upstream source tarball", "the pinned monit: cross-compiled from source, taken from a .deb, or a binary; proven to answer the agent's requests"),
    ("agent", "{binary: {url | path, sha256}} or {source: {path, go, version}}", "none: must be given", "the BOSH agent: an ARM binary, or a bosh-agent source tree cross-compiled with the host's Go"),
    ("replacements", "map of rootfs path to {url | path, sha256}", "{}", "files swapped in before the audit (an ARM build of a known offender)"),
    ("audit", "{allow: [{path, checks, reason}]}", "the profile's exceptions", "audit exceptions: path (`*` wildcards), optional check names, and the reason it may stay"),
    ("image", "{boot_size_mib, root_size_mib, method: loop | rootless}", "256; the tree's size + 25% + 128 MiB; loop as root", "the disk image's partitions (bakery and raw), and how the root is filled"),
];
