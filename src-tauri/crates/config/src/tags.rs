//! Tags: short labels (`db`, `eu-west`) on `[[nodes]]`, `[[parents]]` (every child gets them) and
//! `[[alerts.rules]]` (the rule covers only nodes having all of them). Pages and the API filter
//! by them (`?tag=db`), and history can show a tag's nodes as one group line.

/// The longest tag.
pub const MAX_TAG: usize = 64;

/// Checks one tag: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{tag:?}: a tag is 1 to {MAX_TAG} of the characters A-Z a-z 0-9 . _ -"
        ))
    }
}

/// Sorted, without duplicates: the form every node and rule keeps its tags in.
pub fn normalise(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags.dedup();
    tags
}

/// Whether `have` (a node's tags) holds every tag of `want` (empty `want`: any node).
pub fn has_all(have: &[String], want: &[String]) -> bool {
    want.iter().all(|t| have.iter().any(|h| h == t))
}

/// A `tags = [...]` list as written: each tag checked, then sorted and deduplicated; the error
/// is the message for the `tags` key.
pub(crate) fn validate(raw: Vec<String>) -> Result<Vec<String>, String> {
    for t in &raw {
        check_tag(t)?;
    }
    Ok(normalise(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> crate::Result<crate::Config> {
        crate::parse(text, Path::new("/etc/dsmon/t.toml"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tags_are_checked_sorted_and_deduplicated() {
        for good in ["db", "eu-west", "A.b_c-9", &"x".repeat(64)] {
            assert!(check_tag(good).is_ok(), "{good}");
        }
        for bad in ["", " db", "db ", "a/b", "é", "a,b", &"x".repeat(65)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            normalise(vec!["web".into(), "db".into(), "web".into()]),
            ["db", "web"]
        );
        let db_eu = vec!["db".to_string(), "eu".to_string()];
        assert!(has_all(&db_eu, &["eu".to_string()]));
        assert!(has_all(&db_eu, &db_eu));
        assert!(has_all(&db_eu, &[]));
        assert!(!has_all(&db_eu, &["eu".to_string(), "web".to_string()]));
        assert!(!has_all(&[], &["db".to_string()]));
    }

    #[test]
    fn nodes_parents_and_rules_carry_tags() {
        let c = parse(
            "[[nodes]]\nname = \"n1\"\nurl = \"http://10.0.0.1:19999\"\ntags = [\"eu-west\", \"db\", \"db\"]\n\
             [[nodes]]\nname = \"n2\"\nurl = \"http://10.0.0.2:19999\"\n\
             [[parents]]\nurl = \"http://10.0.0.5:19999\"\ntags = [\"web\"]\n\
             [[alerts.rules]]\nname = \"db cpu\"\nmetric = \"cpu_pct\"\nabove = 90\ntags = [\"db\"]\nnodes = [\"n*\"]\n",
        )
        .unwrap();
        assert_eq!(c.nodes[0].tags, ["db", "eu-west"], "sorted, deduplicated");
        assert!(c.nodes[1].tags.is_empty());
        assert_eq!(c.parents[0].tags, ["web"]);
        assert_eq!(c.alerts.rules[0].tags, ["db"]);
    }

    #[test]
    fn bad_tags_name_the_key() {
        let node = "[[nodes]]\nname = \"n1\"\nurl = \"http://10.0.0.1:19999\"\n";
        for (text, key) in [
            (format!("{node}tags = [\"\"]\n"), "nodes[0].tags"),
            (format!("{node}tags = [\"has space\"]\n"), "nodes[0].tags"),
            (
                "[[parents]]\nurl = \"http://10.0.0.5:19999\"\ntags = [\"a/b\"]\n".to_string(),
                "parents[0].tags",
            ),
            (
                "[[alerts.rules]]\nname = \"x\"\nmetric = \"down\"\ntags = [\"ö\"]\n".to_string(),
                "alerts.rules[0].tags",
            ),
        ] {
            let e = err(&text);
            assert!(e.contains(key) && e.contains("a tag is 1 to 64"), "{e}");
        }
        let e = err(&format!("{node}tags = \"db\"\n"));
        assert!(e.contains("nodes[0].tags"), "{e}");
    }
}
