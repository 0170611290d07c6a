//! Scope strings (RFC 6749 3.3): space-delimited, order-insensitive sets.

use std::collections::BTreeSet;

/// A normalised scope: sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub fn parse(s: &str) -> Self {
        Self(s.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }
    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// RFC 6749 3.3 for an authorization or device request: the `scope`
    /// parameter (or, without one, everything the client may ask for) must be
    /// well formed, non-empty, within the client's registration and offered here.
    pub fn requested(
        param: Option<&str>,
        client: &Scope,
        offered: impl Fn(&str) -> bool,
    ) -> Result<Scope, &'static str> {
        let scope = match param {
            Some(s) if Self::is_well_formed(s) => Self::parse(s),
            Some(_) => return Err("the scope is malformed"),
            None => client.clone(),
        };
        if scope.is_empty() || !scope.is_subset(client) || !scope.iter().all(offered) {
            return Err("the scope is unknown or not allowed for this client");
        }
        Ok(scope)
    }

    /// Scope tokens are `%x21 / %x23-5B / %x5D-7E` (RFC 6749 3.3).
    pub fn is_well_formed(s: &str) -> bool {
        s.split(' ').all(|t| t.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)))
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_order_and_duplicates() {
        assert_eq!(Scope::parse("b a  a").to_string(), "a b");
        assert!(Scope::parse("a").is_subset(&Scope::parse("b a")));
        assert!(!Scope::parse("a c").is_subset(&Scope::parse("b a")));
    }

    #[test]
    fn rejects_quotes_and_backslashes() {
        assert!(Scope::is_well_formed("player:read"));
        assert!(!Scope::is_well_formed("a\"b"));
        assert!(!Scope::is_well_formed("a\\b"));
    }
}
