//! Storm control: when more than `threshold` nodes fire (or resolve) the same rule within
//! `window`, the first `threshold` go out at once and the rest are held and sent as one grouped
//! notification when the window ends. A single alert is never delayed.

use std::collections::HashMap;

use dsmon_config::alerts::StormConfig;

use crate::model::{NoticeItem, NoticeKind};

struct Window {
    start: i64,
    sent: usize,
    held: Vec<NoticeItem>,
}

pub struct Storm {
    cfg: StormConfig,
    windows: HashMap<(usize, NoticeKind), Window>,
}

/// A grouped notification due: rule index, kind, the held items.
pub type Group = (usize, NoticeKind, Vec<NoticeItem>);

impl Storm {
    pub fn new(cfg: StormConfig) -> Self {
        Self {
            cfg,
            windows: HashMap::new(),
        }
    }

    /// Whether `item` of `rule` goes out now (`Some`) or is held for the window's group (`None`).
    pub fn admit(
        &mut self,
        rule: usize,
        kind: NoticeKind,
        item: NoticeItem,
        now: i64,
    ) -> Option<NoticeItem> {
        let span = self.cfg.window.as_secs() as i64;
        let w = self.windows.entry((rule, kind)).or_insert(Window {
            start: now,
            sent: 0,
            held: Vec::new(),
        });
        if now - w.start >= span && w.held.is_empty() {
            *w = Window {
                start: now,
                sent: 0,
                held: Vec::new(),
            };
        }
        if w.sent < self.cfg.threshold {
            w.sent += 1;
            Some(item)
        } else {
            w.held.push(item);
            None
        }
    }

    /// The groups whose window has ended at `now`.
    pub fn due(&mut self, now: i64) -> Vec<Group> {
        let span = self.cfg.window.as_secs() as i64;
        let mut out = Vec::new();
        self.windows.retain(|&(rule, kind), w| {
            if now - w.start < span {
                return true;
            }
            if !w.held.is_empty() {
                out.push((rule, kind, std::mem::take(&mut w.held)));
            }
            false
        });
        out.sort_by_key(|g| (g.0, g.1 as u8));
        out
    }

    /// Items held now (they go out at their window's end).
    pub fn held(&self) -> usize {
        self.windows.values().map(|w| w.held.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(n: usize) -> NoticeItem {
        NoticeItem {
            node: format!("n{n}"),
            value: Some(1.0),
            since: 0,
            ended: None,
            url: None,
        }
    }

    #[test]
    fn past_the_threshold_items_are_grouped_at_the_window_end() {
        let mut s = Storm::new(StormConfig {
            threshold: 3,
            window: Duration::from_secs(10),
        });
        let sent: Vec<bool> = (0..20)
            .map(|n| {
                s.admit(0, NoticeKind::Firing, item(n), 100 + (n as i64 % 5))
                    .is_some()
            })
            .collect();
        assert_eq!(sent.iter().filter(|x| **x).count(), 3);
        assert!(s.due(109).is_empty());
        let groups = s.due(110);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].2.len(), 17);
        assert_eq!(s.held(), 0);
        // Another rule and the resolves are counted apart.
        assert!(s.admit(1, NoticeKind::Firing, item(0), 111).is_some());
        assert!(s.admit(0, NoticeKind::Resolved, item(0), 111).is_some());
        // A new window after the old one ended.
        assert!(s.admit(0, NoticeKind::Firing, item(0), 200).is_some());
    }
}
