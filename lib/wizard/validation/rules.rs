//! Hand-written string rules, each next to the ECMAScript regex the JSON Schema
//! export uses for it. The two must accept the same (normalized) strings; the
//! agreement tests in `tests/library/agreement.rs` check that they do.

use unicode_normalization::UnicodeNormalization;

/// WHATWG HTML `input[type=email]` "valid e-mail address" rule, as written in the spec.
pub const EMAIL_PATTERN: &str = "^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$";

/// Slug: one DNS label, lowercase.
pub const SLUG_PATTERN: &str = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$";

/// Absolute http(s) URL with a DNS host whose last label is alphabetic, an
/// optional port (0-65535) and printable-ASCII path/query/fragment. Stricter
/// than WHATWG URL parsing on purpose: the regex and the server must agree, so
/// no userinfo, no IP literals, no whitespace, no raw non-ASCII (IRIs must be
/// percent-encoded).
pub const URL_PATTERN: &str = "^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(?:[/?#][!-~]*)?$";

/// Single-line text: no C0/C1 control characters (Unicode category Cc).
pub const SINGLE_LINE_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Multi-line text: like [`SINGLE_LINE_PATTERN`] but `\n` (U+000A) is allowed.
pub const MULTI_LINE_PATTERN: &str = "^[^\\u0000-\\u0009\\u000B-\\u001F\\u007F-\\u009F]*$";

/// Text fields longer than this may contain `\n` (multi-line answers such as goals).
pub const MULTI_LINE_THRESHOLD: u32 = 200;

/// The characters ECMAScript's `String.prototype.trim` removes. Rust's
/// `str::trim` differs (it keeps U+FEFF and removes U+0085), and the frontend
/// trims with JavaScript, so this set is the contract.
pub fn is_js_trim_char(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'..='\u{000D}'
            | '\u{0020}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{3000}'
            | '\u{FEFF}'
    )
}

/// Trim (JavaScript's whitespace set) then Unicode NFC: the normalization every
/// string answer goes through, equal to JS `s.trim().normalize("NFC")`.
pub fn normalize_text(raw: &str) -> String {
    raw.trim_matches(is_js_trim_char).nfc().collect()
}

/// A C0/C1 control character (category Cc), other than `\n` when allowed.
pub fn has_control_character(s: &str, allow_newline: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newline && c == '\n'))
}

fn is_email_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&c)
}

/// A DNS-ish label: 1-63 ASCII alphanumerics or `-`, alphanumeric at both ends.
fn is_label(label: &[u8]) -> bool {
    (1..=63).contains(&label.len())
        && label
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && label.first().is_some_and(u8::is_ascii_alphanumeric)
        && label.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// The WHATWG `input[type=email]` rule ([`EMAIL_PATTERN`]).
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.bytes().all(is_email_local_char)
        && domain.split('.').all(|label| is_label(label.as_bytes()))
}

fn is_port(p: &str) -> bool {
    // Same shape as the regex: 1-5 ASCII digits, at most 65535, and five-digit
    // ports may not start with 0 (the regex's alternatives exclude it).
    let digits_ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit());
    digits_ok
        && (p.len() < 5 || (!p.starts_with('0') && p.parse::<u32>().is_ok_and(|n| n <= 65_535)))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// The URL grammar of [`URL_PATTERN`] plus a successful WHATWG URL parse.
pub fn is_valid_url(s: &str) -> bool {
    let Some(rest) =
        strip_prefix_ignore_case(s, "https://").or_else(|| strip_prefix_ignore_case(s, "http://"))
    else {
        return false;
    };
    let end_of_authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end_of_authority);
    if !tail.bytes().all(|c| (b'!'..=b'~').contains(&c)) {
        return false;
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if port.is_some_and(|p| !is_port(p)) {
        return false;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let Some((tld, rest_labels)) = labels.split_last() else {
        return false;
    };
    let grammar_ok = !rest_labels.is_empty()
        && rest_labels.iter().all(|l| is_label(l.as_bytes()))
        && (2..=63).contains(&tld.len())
        && tld.bytes().all(|c| c.is_ascii_alphabetic());
    // The grammar is the contract with the frontend; the parse guards against
    // anything the grammar lets through that a URL library would not accept
    // (see the documented `xn--` exception in the agreement tests).
    grammar_ok && url::Url::parse(s).is_ok()
}

/// An IANA time zone name from the embedded list.
pub fn is_iana_time_zone(s: &str) -> bool {
    crate::wizard::flow::timezones::IANA_TIME_ZONES
        .binary_search(&s)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_the_javascript_whitespace_set_and_composes_to_nfc() {
        assert_eq!(normalize_text("\u{FEFF} Ada\u{3000}\n"), "Ada");
        assert_eq!(normalize_text("Cafe\u{0301}"), "Caf\u{00E9}");
        // U+0085 (NEL) is not JavaScript whitespace: it stays and is later
        // rejected as a control character.
        assert_eq!(normalize_text("\u{0085}x"), "\u{0085}x");
    }

    #[test]
    fn email_rule_follows_whatwg() {
        for ok in [
            "a@b",
            "ada@example.com",
            "a.b+c@x-y.z",
            "!#$%&'*+/=?^_`{|}~-@a1",
            "x@1.2.3.4",
        ] {
            assert!(is_valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "@example.com",
            "ada@",
            "ada",
            "ada@example..com",
            "ada@-example.com",
            "ada@example-.com",
            "ad a@example.com",
            "ada@exa_mple.com",
            "ada@b@c",
            "adé@example.com",
            "ada@éxample.com",
        ] {
            assert!(!is_valid_email(bad), "{bad}");
        }
        assert!(is_valid_email(&format!("a@{}", "b".repeat(63))));
        assert!(!is_valid_email(&format!("a@{}", "b".repeat(64))));
    }

    #[test]
    fn url_rule_accepts_http_and_https_with_a_dns_host() {
        for ok in [
            "https://example.com",
            "http://example.com/",
            "HTTPS://Example.COM/a/b?c=d#e",
            "https://sub.example.co.uk:8443/path",
            "https://a.io:0",
            "https://a.io:65535",
            "https://a.io/%7Euser",
        ] {
            assert!(is_valid_url(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "javascript:alert(1)",
            "https://",
            "https://localhost",
            "https://example",
            "https://1.2.3.4",
            "https://user:pw@example.com",
            "https://example.com:65536",
            "https://example.com:00080",
            "https://exa mple.com",
            "https://example.com/a b",
            "https://example.com/é",
            "http:example.com",
            "https://example.com.",
            "//example.com",
        ] {
            assert!(!is_valid_url(bad), "{bad}");
        }
    }

    #[test]
    fn timezone_lookup_uses_exact_iana_names() {
        assert!(is_iana_time_zone("Europe/Berlin"));
        assert!(is_iana_time_zone("UTC"));
        assert!(is_iana_time_zone("America/Argentina/Buenos_Aires"));
        assert!(!is_iana_time_zone("europe/berlin"));
        assert!(!is_iana_time_zone("Mars/Olympus_Mons"));
        assert!(!is_iana_time_zone("Factory"));
    }
}
