//! Code injection in server-side script and templates other than PHP and Java: Node.js
//! (`child_process`, `process.mainModule`, serialised functions, prototype pollution, event
//! loop stalls), Python and Ruby escapes, Perl interpolation, server-side includes and
//! template expressions (`{{ }}`, `<%= %>`, `#{}`) that reach object constructors.

use super::Hit;

/// Fragments that only appear in code injected into a server-side interpreter.
pub(crate) const SHAPES: &[(&str, u8, &str)] = &[
    ("child_process", 5, "node child process"),
    ("process.mainmodule", 5, "node process module"),
    ("process.binding", 6, "node process binding"),
    ("require('fs')", 8, "node module import"),
    ("require(\"fs\")", 8, "node module import"),
    ("_$$nd_func$$_", 5, "node serialised function"),
    ("__js_function", 8, "serialised function"),
    ("process.env", 10, "node process access"),
    ("process[", 10, "node process access"),
    ("process.exit", 10, "node process access"),
    ("process.kill", 10, "node process access"),
    ("process.cwd", 12, "node process access"),
    ("process.argv", 12, "node process access"),
    ("module.exports", 10, "node module access"),
    ("require.main", 8, "node module access"),
    ("global.process", 8, "node process access"),
    ("globalthis.process", 8, "node process access"),
    ("this.constructor", 10, "constructor escape"),
    ("console.log(", 14, "javascript call"),
    ("console.info(", 14, "javascript call"),
    ("console.error(", 14, "javascript call"),
    ("console.info.call(", 10, "javascript call"),
    ("readdirsync(", 8, "node filesystem call"),
    ("readfilesync(", 8, "node filesystem call"),
    ("execsync(", 8, "node child process"),
    ("eval(string.fromcharcode", 5, "obfuscated eval"),
    ("constructor.constructor(", 6, "constructor escape"),
    ("constructor.prototype", 8, "prototype pollution"),
    ("__proto__", 10, "prototype pollution"),
    ("constructor[prototype]", 8, "prototype pollution"),
    ("__import__(", 6, "python import"),
    ("os.system(", 6, "python os call"),
    ("os.popen(", 6, "python os call"),
    ("subprocess.", 8, "python subprocess"),
    ("eval(compile(", 6, "python eval"),
    ("__class__.__", 8, "python object escape"),
    ("__globals__", 8, "python object escape"),
    ("__builtins__", 8, "python object escape"),
    ("process.spawn(", 8, "ruby process spawn"),
    ("kernel.exec", 8, "ruby kernel exec"),
    ("io.popen", 8, "ruby popen"),
    ("@{[", 8, "perl interpolation"),
    ("<!--#exec", 4, "server-side include"),
    ("<!--#include", 6, "server-side include"),
    ("<!--#set", 10, "server-side include"),
    ("<!--#echo", 10, "server-side include"),
    ("<!--#config", 10, "server-side include"),
    ("<!--#printenv", 10, "server-side include"),
];

static ANCHORS: std::sync::LazyLock<aho_corasick::AhoCorasick> = std::sync::LazyLock::new(|| {
    let mut patterns: Vec<&str> = SHAPES.iter().map(|(p, _, _)| *p).collect();
    patterns.extend([
        "{{",
        "while",
        "function",
        "=>",
        "process",
        "constructor",
        "require",
        "console",
        "<!--",
        "__",
        "@{",
        "subprocess",
        "popen",
    ]);
    super::matcher(&patterns)
});

/// Looks for server-side code injection in `folded`.
pub fn detect(text: &str, folded: &str) -> Option<Hit> {
    // Server-side includes hide in HTML comments, which the folded view drops.
    if let Some(at) = text.find("<!--#") {
        let directive = text[at + 5..].trim_start().to_ascii_lowercase();
        let score = if directive.starts_with("exec") { 4 } else { 8 };
        return Some(Hit::new(score, "server-side include", at, text.len()));
    }
    if let Some(hit) = expression_probe(text) {
        return Some(hit);
    }
    if !ANCHORS.is_match(folded) {
        return None;
    }
    let squeezed: String = folded.chars().filter(|c| !c.is_whitespace()).collect();
    let mut best =
        SHAPES
            .iter()
            .find(|(p, _, _)| squeezed.contains(p))
            .map(|(p, score, reason)| {
                Hit::new(
                    *score,
                    reason,
                    folded.find(p.get(..4).unwrap_or(p)).unwrap_or(0),
                    folded.len(),
                )
            });
    if squeezed.contains("{{") {
        best = Hit::better(best, template(&squeezed));
    }
    if squeezed.contains("while(") {
        best = Hit::better(best, endless_loop(&squeezed));
    }
    if squeezed.contains("function(") || squeezed.contains("=>{") {
        let score = if squeezed.contains("function(){") || squeezed.contains("function(){}") {
            16
        } else {
            30
        };
        best = Hit::better(
            best,
            Some(Hit::new(
                score,
                "javascript function literal",
                0,
                folded.len(),
            )),
        );
    }
    best
}

/// `{{ ... }}` reaching constructors, classes or config, or evaluating arithmetic.
/// `${7*7}`, `#{7*7}`, `<%= 7*7 %>`: arithmetic in the expression syntax of server-side
/// template engines, the probe that finds template injection.
fn expression_probe(text: &str) -> Option<Hit> {
    // Every opening below holds a `{` or a `%`: one scan spares five searches on nearly
    // every input.
    memchr::memchr2(b'{', b'%', text.as_bytes())?;
    for (open, close) in [
        ("${", "}"),
        ("#{", "}"),
        ("<%=", "%>"),
        ("{{", "}}"),
        ("*{", "}"),
    ] {
        let Some(at) = text.find(open) else {
            continue;
        };
        let inner = &text[at + open.len()..];
        let Some(end) = inner.find(close) else {
            continue;
        };
        let expr: String = inner[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let arithmetic = (3..=16).contains(&expr.len())
            && expr.contains(['*', '+', '-', '/'])
            && expr
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '+' | '-' | '/' | '(' | ')'))
            && expr.starts_with(|c: char| c.is_ascii_digit());
        if arithmetic {
            return Some(Hit::new(16, "template expression probe", at, text.len()));
        }
    }
    None
}

fn template(squeezed: &str) -> Option<Hit> {
    let open = squeezed.find("{{")?;
    let inner_end = squeezed[open..]
        .find("}}")
        .map_or(squeezed.len(), |p| open + p);
    let inner = &squeezed[open + 2..inner_end];
    let reach = [
        "constructor",
        "__class__",
        "config",
        "self.",
        "request.",
        "lipsum",
        "cycler",
        "joiner",
        "_self",
        "range.constructor",
        "getruntime",
    ];
    if reach.iter().any(|r| inner.contains(r)) {
        return Some(Hit::new(6, "template injection", open, squeezed.len()));
    }
    let arithmetic = inner.len() <= 12
        && inner.contains(['*', '+'])
        && inner
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '+' | '-' | '/'));
    arithmetic.then(|| Hit::new(18, "template expression probe", open, squeezed.len()))
}

/// `while(!false)`, `while(true)`, `while(1)`, `while(new Date)`: a loop on a constant that
/// never ends, stalling the event loop.
fn endless_loop(squeezed: &str) -> Option<Hit> {
    let at = squeezed.find("while(")?;
    let cond = squeezed[at + 6..].split(')').next().unwrap_or("");
    truthy(cond).then(|| Hit::new(10, "endless loop", at, squeezed.len()))
}

fn truthy(cond: &str) -> bool {
    match cond {
        "true" | "infinity" | "-infinity" | "+infinity" | "[]" | "{}" | "this" | "string"
        | "object" | "array" | "function" | "date" | "math" | "window" | "globalthis" => true,
        _ if cond.starts_with("!!") => truthy(&cond[2..]),
        _ if cond.starts_with("new") => true,
        _ if cond.starts_with('!') => falsy(&cond[1..]),
        _ => cond
            .trim_start_matches(['-', '+'])
            .parse::<f64>()
            .is_ok_and(|v| v != 0.0),
    }
}

fn falsy(cond: &str) -> bool {
    matches!(
        cond,
        "false" | "0" | "-0" | "+0" | "''" | "\"\"" | "``" | "null" | "undefined" | "nan" | "0n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(s: &str) -> Option<u8> {
        detect(s, &s.to_lowercase()).map(|h| h.score)
    }

    #[test]
    fn catches_node_and_template_escapes() {
        assert!(score("require('child_process').exec('id')").is_some_and(|s| s <= 8));
        assert!(score("{{constructor.constructor('alert(1)')()}}").is_some_and(|s| s <= 8));
        assert!(score("<!--#exec cmd=\"/bin/ls\" -->").is_some_and(|s| s <= 8));
        assert!(score("while(!false)").is_some_and(|s| s <= 12));
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert_eq!(score("while (foo) is bar."), None);
        assert_eq!(score("while(!true);"), None);
        assert_eq!(score("{{name}} says hello"), None);
    }
}
