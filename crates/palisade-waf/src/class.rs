//! The attack classes that get a score, and the detectors that report into them.

/// A class of attack with its own score (`waf.score.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttackClass {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Command injection and other remote code execution (shell, Node.js, templates).
    Rce,
    /// Path traversal and local file inclusion.
    Lfi,
    /// Remote file inclusion and server-side request forgery.
    Rfi,
    /// PHP code injection.
    Php,
    /// Java code injection, deserialisation and expression-language attacks.
    Java,
    /// Protocol attacks: smuggling, header injection, invalid encodings, scanners.
    Protocol,
}

impl AttackClass {
    /// Every class, in score order.
    pub const ALL: [AttackClass; 8] = [
        Self::Sqli,
        Self::Xss,
        Self::Rce,
        Self::Lfi,
        Self::Rfi,
        Self::Php,
        Self::Java,
        Self::Protocol,
    ];

    /// The name used in rule fields and events (`sqli`, `xss`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Xss => "xss",
            Self::Rce => "rce",
            Self::Lfi => "lfi",
            Self::Rfi => "rfi",
            Self::Php => "php",
            Self::Java => "java",
            Self::Protocol => "protocol",
        }
    }

    /// The class with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Position in [`AttackClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One detector. Several detectors may report into one class; exclusions can name either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DetectorKind {
    /// SQL tokenizer and grammar.
    Sqli,
    /// HTML/JavaScript tokenizer.
    Xss,
    /// Shell tokenizer.
    Shell,
    /// JavaScript / Node.js and template code injection.
    Node,
    /// Path traversal and sensitive local files.
    Traversal,
    /// Remote file inclusion (URLs where files are expected).
    Rfi,
    /// Requests to internal or cloud-metadata addresses.
    Ssrf,
    /// PHP code, wrappers, serialised objects.
    Php,
    /// Java classes, deserialisation, JNDI and expression languages.
    Java,
    /// HTTP protocol anomalies and header injection.
    Protocol,
    /// Known vulnerability scanners.
    Scanner,
    /// Session identifiers planted from another site.
    Fixation,
}

impl DetectorKind {
    /// Every detector.
    pub const ALL: [DetectorKind; 12] = [
        Self::Sqli,
        Self::Xss,
        Self::Shell,
        Self::Node,
        Self::Traversal,
        Self::Rfi,
        Self::Ssrf,
        Self::Php,
        Self::Java,
        Self::Protocol,
        Self::Scanner,
        Self::Fixation,
    ];

    /// The name used in exclusions and events.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqli => "sqli",
            Self::Xss => "xss",
            Self::Shell => "shell",
            Self::Node => "node",
            Self::Traversal => "traversal",
            Self::Rfi => "rfi",
            Self::Ssrf => "ssrf",
            Self::Php => "php",
            Self::Java => "java",
            Self::Protocol => "protocol",
            Self::Scanner => "scanner",
            Self::Fixation => "fixation",
        }
    }

    /// The detector with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The class this detector scores.
    pub fn class(self) -> AttackClass {
        match self {
            Self::Sqli => AttackClass::Sqli,
            Self::Xss => AttackClass::Xss,
            Self::Shell | Self::Node => AttackClass::Rce,
            Self::Traversal => AttackClass::Lfi,
            Self::Rfi | Self::Ssrf => AttackClass::Rfi,
            Self::Php => AttackClass::Php,
            Self::Java => AttackClass::Java,
            Self::Protocol | Self::Scanner | Self::Fixation => AttackClass::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for class in AttackClass::ALL {
            assert_eq!(AttackClass::from_name(class.name()), Some(class));
        }
        for kind in DetectorKind::ALL {
            assert_eq!(DetectorKind::from_name(kind.name()), Some(kind));
        }
    }

    #[test]
    fn class_index_matches_position() {
        for (i, class) in AttackClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }
}
