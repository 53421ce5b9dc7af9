//! Who may get in once authenticated: allowed email domains, emails and groups. A pure
//! function of the policy and the user's claims.

use serde_json::Value;

use crate::config::AccessConfig;

/// The claim at a dotted path (`realm_access.roles`), through nested objects.
pub(crate) fn claim_at<'c>(
    get: &impl Fn(&str) -> Option<&'c Value>,
    path: &str,
) -> Option<&'c Value> {
    let mut parts = path.split('.');
    let mut value = get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The claims the policy reads, so sessions keep them.
pub(crate) fn claims_needed(access: &AccessConfig) -> Vec<String> {
    let mut needed = Vec::new();
    if !access.allowed_email_domains.is_empty() || !access.allowed_emails.is_empty() {
        needed.push("email".to_string());
    }
    if !access.allowed_groups.is_empty() {
        needed.push(
            access
                .groups_claim
                .split('.')
                .next()
                .unwrap_or("groups")
                .to_string(),
        );
    }
    needed
}

/// An address with exactly one `@`, something on both sides, no whitespace and no trailing
/// dot: `a@b@example.com` or `a@example.com.` must not pass a domain rule
/// (oauth2-proxy's GHSA-c5c4-8r6x-56w3).
fn email_domain(email: &str) -> Option<(String, String)> {
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace);
    plausible.then(|| (email.to_ascii_lowercase(), domain.to_ascii_lowercase()))
}

/// `Ok` when the user may get in; the reason otherwise.
pub(crate) fn authorize<'c>(
    access: &AccessConfig,
    get: impl Fn(&str) -> Option<&'c Value>,
) -> Result<(), &'static str> {
    if !access.allowed_email_domains.is_empty() || !access.allowed_emails.is_empty() {
        let email = get("email").and_then(Value::as_str).and_then(email_domain);
        let allowed = email.is_some_and(|(email, domain)| {
            access.allowed_emails.contains(&email) || access.allowed_email_domains.contains(&domain)
        });
        if !allowed {
            return Err("email not allowed");
        }
    }
    if !access.allowed_groups.is_empty() {
        let in_group = match claim_at(&get, &access.groups_claim) {
            Some(Value::String(group)) => access.allowed_groups.contains(group),
            Some(Value::Array(groups)) => groups
                .iter()
                .filter_map(Value::as_str)
                .any(|g| access.allowed_groups.iter().any(|a| a == g)),
            _ => false,
        };
        if !in_group {
            return Err("not in an allowed group");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(domains: &[&str], emails: &[&str], groups: &[&str], claim: &str) -> AccessConfig {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        AccessConfig {
            public_paths: Vec::new(),
            api_paths: Vec::new(),
            bearer_audiences: Vec::new(),
            allowed_email_domains: strings(domains),
            allowed_emails: strings(emails),
            allowed_groups: strings(groups),
            groups_claim: claim.to_string(),
        }
    }

    fn check(access: &AccessConfig, claims: Value) -> Result<(), &'static str> {
        authorize(access, |name| claims.get(name))
    }

    #[test]
    fn email_rules() {
        let access = policy(&["example.com"], &["guest@partner.org"], &[], "groups");
        assert_eq!(
            check(&access, json!({"email": "alice@example.com"})),
            Ok(())
        );
        assert_eq!(
            check(&access, json!({"email": "Alice@EXAMPLE.com"})),
            Ok(())
        );
        assert_eq!(
            check(&access, json!({"email": "guest@partner.org"})),
            Ok(())
        );
        for bad in [
            "bob@partner.org",
            "a@b@example.com",
            "a@example.com.",
            "a@evil-example.com",
            "@example.com",
            "a @example.com",
        ] {
            assert_eq!(
                check(&access, json!({"email": bad})),
                Err("email not allowed"),
                "{bad}"
            );
        }
        assert_eq!(check(&access, json!({})), Err("email not allowed"));
        assert_eq!(
            check(&policy(&[], &[], &[], "groups"), json!({})),
            Ok(()),
            "no rules: everyone"
        );
    }

    #[test]
    fn group_rules_with_nested_claims() {
        let flat = policy(&[], &[], &["admins"], "groups");
        assert_eq!(check(&flat, json!({"groups": ["staff", "admins"]})), Ok(()));
        assert_eq!(check(&flat, json!({"groups": "admins"})), Ok(()));
        assert_eq!(
            check(&flat, json!({"groups": ["staff"]})),
            Err("not in an allowed group")
        );
        let nested = policy(&[], &[], &["app-admin"], "realm_access.roles");
        assert_eq!(
            check(&nested, json!({"realm_access": {"roles": ["app-admin"]}})),
            Ok(())
        );
        assert_eq!(
            check(&nested, json!({"realm_access": {"roles": []}})),
            Err("not in an allowed group")
        );
        assert_eq!(
            check(&nested, json!({"realm_access": "app-admin"})),
            Err("not in an allowed group")
        );
    }
}
