//! Which input is on air, frame by frame: the primary or the backup
//! (docs/design/timeline.md, *Input loss and the slate*).

/// `input.source` values.
pub const SOURCE_PRIMARY: u8 = 0;
pub const SOURCE_BACKUP: u8 = 1;

/// Which input is on air (docs/design/timeline.md, *Input loss and the slate*; `input.source`): the
/// primary while it delivers; the backup once the primary would go to slate and the backup has
/// pictures; the primary again once it delivered for `hold` without a loss (at a GOP start), or at
/// once when the backup is lost too.
#[derive(Debug, Default)]
pub struct Selector {
    pub on: u8,
    /// First frame of the primary's current run without a loss.
    stable_since: Option<u64>,
}

impl Selector {
    /// Decides frame `k` from whether each input has a picture (live or held) for it; returns
    /// the input on air and whether it switched.
    pub fn decide(
        &mut self,
        k: u64,
        primary: bool,
        backup: bool,
        hold_frames: u64,
        gop_start: bool,
    ) -> (u8, bool) {
        if primary {
            self.stable_since.get_or_insert(k);
        } else {
            self.stable_since = None;
        }
        let before = self.on;
        self.on = match self.on {
            SOURCE_PRIMARY if !primary && backup && hold_frames > 0 => SOURCE_BACKUP,
            SOURCE_BACKUP if hold_frames == 0 || (!backup && primary) => SOURCE_PRIMARY,
            SOURCE_BACKUP
                if gop_start
                    && self
                        .stable_since
                        .is_some_and(|s| k.saturating_sub(s) >= hold_frames) =>
            {
                SOURCE_PRIMARY
            }
            on => on,
        };
        (self.on, self.on != before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_takes_over_on_loss_and_the_primary_comes_back_after_hold() {
        let mut s = Selector::default();
        let hold = 300; // 10 s at 30 fps
        let gop = |k: u64| k.is_multiple_of(30);
        assert_eq!(
            s.decide(0, true, true, hold, gop(0)),
            (SOURCE_PRIMARY, false)
        );
        // The primary would go to slate: the backup is on air on that very frame.
        assert_eq!(
            s.decide(1, false, true, hold, gop(1)),
            (SOURCE_BACKUP, true)
        );
        // The primary returns; it stays off air for `hold`, then comes back at a GOP start.
        for k in 100..400 {
            assert_eq!(
                s.decide(k, true, true, hold, gop(k)).0,
                SOURCE_BACKUP,
                "frame {k}"
            );
        }
        assert_eq!(
            s.decide(400, true, true, hold, gop(400)),
            (SOURCE_BACKUP, false)
        );
        assert_eq!(
            s.decide(420, true, true, hold, gop(420)),
            (SOURCE_PRIMARY, true)
        );
        // A loss of the primary during the hold restarts it.
        let mut s = Selector::default();
        s.decide(0, false, true, hold, true);
        s.decide(10, true, true, hold, false);
        s.decide(200, false, true, hold, false);
        for k in 201..500 {
            assert_eq!(
                s.decide(k, true, true, hold, gop(k)).0,
                SOURCE_BACKUP,
                "frame {k}"
            );
        }
        assert_eq!(s.decide(510, true, true, hold, gop(510)).0, SOURCE_PRIMARY);
        // Both lost: the backup stays selected (the slate is fed); the backup lost while the
        // primary is there: the primary at once.
        let mut s = Selector::default();
        s.decide(0, false, true, hold, true);
        assert_eq!(s.decide(1, false, false, hold, false).0, SOURCE_BACKUP);
        assert_eq!(
            s.decide(2, true, false, hold, false),
            (SOURCE_PRIMARY, true)
        );
        // No backup configured: always the primary.
        let mut s = Selector::default();
        assert_eq!(s.decide(0, false, true, 0, true).0, SOURCE_PRIMARY);
    }
}
