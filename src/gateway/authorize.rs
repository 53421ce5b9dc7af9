//! Who may get in once authenticated: allowed email domains, emails and groups, and claims
//! with required values. A pure function of the requirements and the user's claims.

use serde_json::Value;

use crate::config::{AccessConfig, Allow, Requirements};

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

/// The claims the policy reads (globally and in every rule), so sessions keep them.
pub(crate) fn claims_needed(access: &AccessConfig) -> Vec<String> {
    let rules = access.rules.iter().filter_map(|rule| match &rule.allow {
        Allow::Only(requirements) => Some(requirements),
        Allow::Public | Allow::Authenticated => None,
    });
    let mut needed: Vec<String> = Vec::new();
    let mut need = |claim: &str| {
        let top = claim.split('.').next().unwrap_or(claim).to_string();
        if !needed.contains(&top) {
            needed.push(top);
        }
    };
    for requirements in std::iter::once(&access.requirements).chain(rules) {
        if !requirements.allowed_email_domains.is_empty() || !requirements.allowed_emails.is_empty()
        {
            need("email");
        }
        if !requirements.allowed_groups.is_empty() {
            need(&access.groups_claim);
        }
        for (claim, _) in &requirements.required_claims {
            need(claim);
        }
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

/// Whether a claim's value is `wanted`: equal as text (strings, numbers, booleans), or, for a
/// list, containing it.
fn has_value(claim: Option<&Value>, wanted: &str) -> bool {
    let equals = |value: &Value| match value {
        Value::String(text) => text == wanted,
        Value::Bool(flag) => wanted == if *flag { "true" } else { "false" },
        Value::Number(number) => wanted.parse::<serde_json::Number>().ok().as_ref() == Some(number),
        _ => false,
    };
    match claim {
        Some(Value::Array(items)) => items.iter().any(equals),
        Some(value) => equals(value),
        None => false,
    }
}

/// `Ok` when the user meets `requirements`; the reason otherwise.
pub(crate) fn authorize<'c>(
    requirements: &Requirements,
    groups_claim: &str,
    get: impl Fn(&str) -> Option<&'c Value>,
) -> Result<(), &'static str> {
    if !requirements.allowed_email_domains.is_empty() || !requirements.allowed_emails.is_empty() {
        let email = get("email").and_then(Value::as_str).and_then(email_domain);
        let allowed = email.is_some_and(|(email, domain)| {
            requirements.allowed_emails.contains(&email)
                || requirements.allowed_email_domains.contains(&domain)
        });
        if !allowed {
            return Err("email not allowed");
        }
    }
    if !requirements.allowed_groups.is_empty() {
        let in_group = requirements
            .allowed_groups
            .iter()
            .any(|group| has_value(claim_at(&get, groups_claim), group));
        if !in_group {
            return Err("not in an allowed group");
        }
    }
    for (claim, wanted) in &requirements.required_claims {
        if !has_value(claim_at(&get, claim), wanted) {
            return Err("a required claim does not have its value");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(domains: &[&str], emails: &[&str], groups: &[&str], claim: &str) -> Policy {
        let strings = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Policy(
            Requirements {
                allowed_email_domains: strings(domains),
                allowed_emails: strings(emails),
                allowed_groups: strings(groups),
                required_claims: Vec::new(),
            },
            claim.to_string(),
        )
    }

    struct Policy(Requirements, String);

    fn check(policy: &Policy, claims: Value) -> Result<(), &'static str> {
        authorize(&policy.0, &policy.1, |name| claims.get(name))
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

    #[test]
    fn required_claim_values_match_text_numbers_booleans_and_list_members() {
        let mut required = policy(&[], &[], &[], "groups");
        required.0.required_claims = vec![
            ("tid".into(), "contoso".into()),
            ("email_verified".into(), "true".into()),
            ("org.level".into(), "3".into()),
        ];
        let good = json!({"tid": "contoso", "email_verified": true, "org": {"level": 3}});
        assert_eq!(check(&required, good), Ok(()));
        let listed = json!({"tid": ["fabrikam", "contoso"], "email_verified": "true", "org": {"level": [3]}});
        assert_eq!(check(&required, listed), Ok(()));
        for bad in [
            json!({"tid": "fabrikam", "email_verified": true, "org": {"level": 3}}),
            json!({"tid": "contoso", "email_verified": false, "org": {"level": 3}}),
            json!({"tid": "contoso", "email_verified": true, "org": {"level": "3x"}}),
            json!({"tid": "contoso", "email_verified": true}),
            json!({"tid": {"name": "contoso"}, "email_verified": true, "org": {"level": 3}}),
        ] {
            assert_eq!(
                check(&required, bad.clone()),
                Err("a required claim does not have its value"),
                "{bad}"
            );
        }
    }
}
