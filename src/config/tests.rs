//! Loading as a whole: the example file, the README, environment and secret files.

use super::*;

const EXAMPLE: &str = include_str!("../../config/sessiongate.example.toml");
const FRESH_SECRET: &str = "c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ==";

fn env(pairs: &[(&str, &str)]) -> Environment {
    pairs
        .iter()
        .fold(Environment::default(), |env, (k, v)| env.with(k, v))
}

fn problems(text: &str, env: &Environment) -> Vec<String> {
    match Config::parse(text, env) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.into_iter().map(|p| p.message).collect(),
    }
}

const MINIMAL: &str = r#"
[server]
public_url = "https://app.example.com"
[upstream]
url = "http://127.0.0.1:8080"
[oidc]
issuer = "https://idp.example.com"
client_id = "app"
[session]
secrets = ["c2Vzc2lvbmdhdGUtdGVzdC1zZWNyZXQtMDEyMzQ1Njc4OQ=="]
"#;

#[test]
fn the_example_parses_once_its_placeholder_secret_is_replaced() {
    assert_eq!(
        problems(EXAMPLE, &Environment::default()),
        vec![
            "session.secrets[0]: is not random (the example's placeholder?); make one with `sessiongate gen-secret`"
        ]
    );
    let config = Config::parse(
        EXAMPLE,
        &env(&[("SESSIONGATE_SESSION_SECRETS", FRESH_SECRET)]),
    )
    .expect("example is valid");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:4180");
    assert_eq!(config.session.idle_timeout, Duration::from_secs(3600));
    assert_eq!(config.access.api_paths, vec!["/api/"]);
}

#[test]
fn the_example_documents_every_key() {
    for key in schema::KEYS {
        let (section, name) = key.path.rsplit_once('.').expect("section.key");
        let section_header = format!("[{section}]");
        assert!(
            EXAMPLE.contains(&section_header),
            "{section_header} is missing from the example"
        );
        let line = EXAMPLE
            .lines()
            .map(|l| l.trim_start_matches("# ").trim())
            .any(|l| l.starts_with(&format!("{name} =")));
        let table = (key.kind == schema::Kind::Map && EXAMPLE.contains(&format!("[{}]", key.path)))
            || (key.kind == schema::Kind::Tables && EXAMPLE.contains(&format!("[[{}]]", key.path)));
        assert!(line || table, "{} is not in the example", key.path);
    }
}

#[test]
fn the_readme_reference_matches_the_schema() {
    let readme = include_str!("../../README.md");
    let table = schema::reference_table();
    assert!(
        readme.contains(&table),
        "README.md's configuration reference is out of date; it should contain:\n{table}"
    );
}

#[test]
fn defaults_fill_everything_not_given() {
    let config = Config::parse(MINIMAL, &Environment::default()).expect("minimal config is valid");
    assert_eq!(config.server.auth_prefix, "/oauth2");
    assert_eq!(config.server.admin_listen, None);
    assert_eq!(
        config.session.absolute_timeout,
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(config.session.store, StoreKind::Cookie);
    assert_eq!(config.oidc.scopes, vec!["openid", "email", "profile"]);
    assert_eq!(config.headers.claims.len(), 4);
    assert!(config.upstream.preserve_host);
    assert_eq!(config.log.format, LogFormat::Text);
}

#[test]
fn openid_is_always_requested() {
    let text = MINIMAL.replace(
        "client_id = \"app\"",
        "client_id = \"app\"\nscopes = [\"email\"]",
    );
    let config = Config::parse(&text, &Environment::default()).expect("valid");
    assert_eq!(config.oidc.scopes, vec!["openid", "email"]);
}

#[test]
fn the_environment_overrides_the_file() {
    let config = Config::parse(
        MINIMAL,
        &env(&[
            ("SESSIONGATE_SERVER_LISTEN", "127.0.0.1:9999"),
            ("SESSIONGATE_SESSION_IDLE_TIMEOUT", "15m"),
            ("SESSIONGATE_ACCESS_PUBLIC_PATHS", "/a/, /b"),
            ("SESSIONGATE_OIDC_CLIENT_SECRET", "from-env"),
        ]),
    )
    .expect("valid");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(config.session.idle_timeout, Duration::from_secs(900));
    assert_eq!(config.access.public_paths, vec!["/a/", "/b"]);
    assert_eq!(
        config.oidc.client_secret.as_ref().map(Secret::expose),
        Some("from-env")
    );
}

#[test]
fn secrets_come_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("client_secret");
    std::fs::write(&secret_file, "s3cr3t\n").expect("write");
    let keys_file = dir.path().join("keys");
    std::fs::write(
        &keys_file,
        format!("# newest first\n{FRESH_SECRET}\n\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n"),
    )
    .expect("write");
    let text = MINIMAL
        .replace(
            "client_id = \"app\"",
            &format!(
                "client_id = \"app\"\nclient_secret_file = \"{}\"",
                secret_file.display()
            ),
        )
        .replace(
            &format!("secrets = [\"{FRESH_SECRET}\"]"),
            &format!("secrets_file = \"{}\"", keys_file.display()),
        );
    let config = Config::parse(&text, &Environment::default()).expect("valid");
    assert_eq!(
        config.oidc.client_secret.as_ref().map(Secret::expose),
        Some("s3cr3t")
    );
    assert_eq!(config.session.secrets.len(), 2);

    // A secret file given in the environment replaces the file's inline secret.
    let config = Config::parse(
        MINIMAL,
        &env(&[(
            "SESSIONGATE_SESSION_SECRETS_FILE",
            &keys_file.display().to_string(),
        )]),
    )
    .expect("valid");
    assert_eq!(config.session.secrets.len(), 2);
}

#[test]
fn a_secret_given_twice_is_refused() {
    let text = MINIMAL.replace(
        "client_id = \"app\"",
        "client_id = \"app\"\nclient_secret = \"a\"\nclient_secret_file = \"/nonexistent\"",
    );
    assert_eq!(
        problems(&text, &Environment::default()),
        vec![
            "oidc.client_secret: is set twice: give either oidc.client_secret or oidc.client_secret_file, not both"
        ]
    );
}

#[test]
fn problems_never_echo_secret_values() {
    let text = MINIMAL.replace(FRESH_SECRET, "hunter2-not-base64!");
    let all = problems(&text, &Environment::default()).join("\n");
    assert!(all.contains("session.secrets[0]: must be base64"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
    let config = Config::parse(
        MINIMAL,
        &env(&[("SESSIONGATE_OIDC_CLIENT_SECRET", "hunter2")]),
    )
    .expect("valid");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[server]
listen = "nowhere"
public_url = "http://app.example.com"
[upstream]
url = "ftp://files"
[session]
idle_timeout = "2h"
absolute_timeout = "1h"
"#;
    let all = problems(text, &Environment::default());
    for expected in [
        "server.listen: \"nowhere\" is not an address; write host:port with an IP, like \"0.0.0.0:4180\"",
        "server.public_url: must be an https URL (http is allowed only for loopback hosts)",
        "upstream.url: scheme \"ftp\" is not supported: use http://host:port or https://host:port",
        "oidc.issuer: is required (or set SESSIONGATE_OIDC_ISSUER)",
        "oidc.client_id: is required (or set SESSIONGATE_OIDC_CLIENT_ID)",
        "session.secrets: is required: add one with `sessiongate gen-secret` (or set session.secrets_file)",
        "session.idle_timeout (2h) must not exceed session.absolute_timeout (1h)",
    ] {
        assert!(
            all.iter().any(|p| p == expected),
            "missing {expected:?} in {all:#?}"
        );
    }
    assert_eq!(all.len(), 7, "{all:#?}");
}

#[test]
fn the_deployment_files_name_only_real_environment_variables() {
    let files = [
        include_str!("../../config/deploy/docker-compose.yml"),
        include_str!("../../config/deploy/kubernetes.yaml"),
        include_str!("../../README.md"),
    ];
    let known: Vec<String> = schema::KEYS
        .iter()
        .map(|k| schema::env_name(k.path))
        .chain(["SESSIONGATE_CONFIG".to_string()])
        .collect();
    for text in files {
        for (at, _) in text.match_indices("SESSIONGATE_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name == "SESSIONGATE_" || name.ends_with('_') {
                continue; // prose about the prefix itself
            }
            assert!(known.contains(&name), "{name} names no configuration key");
        }
    }
}
