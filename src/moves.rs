//! Bookkeeping of the balancer's moves between rounds: which tasks must be
//! left alone for now, and why.
//!
//! The balancer ([`crate::balancer`]) is a pure function of one snapshot; it
//! knows nothing of earlier rounds. The daemon writes its moves to a BPF map
//! and BPF carries each one out the next time the task is enqueued, which
//! for a sleeping task may be never. Between rounds, a [`MoveBook`] keeps:
//!
//! - **Pending moves.** At the start of each round the daemon takes back the
//!   moves BPF has not carried out ([`MoveBook::settle`]): the task never
//!   woke, so it is still where it was and its figures are still right;
//!   it is free to be planned again. The others took effect.
//! - **The cooldown.** A task that moved is left where it was put until
//!   nothing the daemon reads can still describe it in its old domain. BPF
//!   files each task in the candidate table under its domain and refreshes
//!   the entry when the task runs; a task that sleeps after its move keeps
//!   its old entry until that entry is older than the candidates' maximum
//!   age (so many load half-lives), and the balancer would then see it,
//!   with its old load, in a domain it has left. So the hold lasts at least
//!   that long after the move took effect, whatever `--interval` is, and
//!   at least [`MIN_HOLD_ROUNDS`] rounds, so that a second move is never
//!   the answer to the noise of one interval. This, not the balancer alone,
//!   is what keeps a task from going back and forth between rounds.

use std::collections::{HashMap, HashSet};

/// Fewest rounds a moved task stays where it was put.
pub const MIN_HOLD_ROUNDS: u64 = 3;

/// Candidate entries older than this many load half-lives are ignored: a
/// task not seen for that long has decayed to 1/8 of its load, not worth a
/// move.
pub const CAND_MAX_AGE_HALF_LIVES: u64 = 3;

/// Where a move is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Written to BPF at `at_ns`; not known yet whether it took effect.
    Pending { at_ns: u64 },
    /// Took effect at the latest at `by_ns` (when the daemon found it gone
    /// from the map).
    Applied { by_ns: u64 },
}

/// What became of the moves of the last round (see [`MoveBook::settle`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settled {
    pub applied: usize,
    pub dropped: usize,
}

/// The moves of recent rounds; see the module doc.
#[derive(Clone, Debug)]
pub struct MoveBook {
    hold_ns: u64,
    cand_max_age_ns: u64,
    moves: HashMap<i32, State>,
}

impl MoveBook {
    /// A book for rounds every `interval_ns` and loads with a half-life of
    /// `half_life_ns`.
    pub fn new(interval_ns: u64, half_life_ns: u64) -> Self {
        let cand_max_age_ns = half_life_ns.saturating_mul(CAND_MAX_AGE_HALF_LIVES);
        // Held rounds are counted from the round that finds the move done,
        // one interval after it was written.
        let rounds_ns = interval_ns.saturating_mul(MIN_HOLD_ROUNDS - 1);
        Self {
            hold_ns: rounds_ns.max(cand_max_age_ns),
            cand_max_age_ns,
            moves: HashMap::new(),
        }
    }

    /// Candidate entries older than this are to be ignored.
    pub fn cand_max_age_ns(&self) -> u64 {
        self.cand_max_age_ns
    }

    /// How long a task stays put after its move took effect.
    pub fn hold_ns(&self) -> u64 {
        self.hold_ns
    }

    /// Start of a round: `unapplied` are the pids whose moves BPF had not
    /// carried out, which the daemon has just taken back from the map.
    /// Every other pending move took effect by `now_ns`.
    pub fn settle(&mut self, unapplied: &[i32], now_ns: u64) -> Settled {
        let unapplied: HashSet<i32> = unapplied.iter().copied().collect();
        let mut out = Settled::default();
        self.moves.retain(|pid, state| {
            if let State::Pending { .. } = state {
                if unapplied.contains(pid) {
                    out.dropped += 1;
                    return false;
                }
                *state = State::Applied { by_ns: now_ns };
                out.applied += 1;
            }
            true
        });
        out
    }

    /// The tasks the balancer must leave where they are at `now_ns`; forgets
    /// the moves whose hold is over.
    pub fn held(&mut self, now_ns: u64) -> HashSet<i32> {
        let hold = self.hold_ns;
        self.moves.retain(|_, state| match *state {
            State::Pending { .. } => true,
            State::Applied { by_ns } => now_ns.saturating_sub(by_ns) <= hold,
        });
        self.moves.keys().copied().collect()
    }

    /// The moves of this round (pids), written to BPF at `now_ns`.
    pub fn planned(&mut self, pids: impl IntoIterator<Item = i32>, now_ns: u64) {
        for pid in pids {
            self.moves.insert(pid, State::Pending { at_ns: now_ns });
        }
    }

    /// Moves written and not yet settled.
    pub fn pending(&self) -> usize {
        self.moves
            .values()
            .filter(|s| matches!(s, State::Pending { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf_intf;
    use crate::load::{DOMMASK_WORDS, read_candidates};

    const S: u64 = 1_000_000_000;

    /// Moves pid 7 at time 0, then runs `n` rounds every `interval` in
    /// which BPF has carried it out; returns the times pid 7 was held.
    fn rounds_held(book: &mut MoveBook, interval: u64, n: u64) -> Vec<u64> {
        let mut held = Vec::new();
        book.planned([7], 0);
        for r in 1..=n {
            let now = r * interval;
            book.settle(&[], now);
            if book.held(now).contains(&7) {
                held.push(now);
            }
        }
        held
    }

    #[test]
    fn a_moved_task_is_held_for_at_least_the_minimum_rounds() {
        // Interval longer than the candidates' age: the rounds decide.
        let mut book = MoveBook::new(4 * S, S / 2);
        let held = rounds_held(&mut book, 4 * S, 10);
        // Written in round 0, found done in round 1, held through round 3.
        assert_eq!(held, vec![4 * S, 8 * S, 12 * S]);
    }

    #[test]
    fn interval_below_half_life_holds_until_the_old_entry_has_aged_out() {
        // --interval 0.5 --load-half-life 1: three rounds would be 1.5 s,
        // but an entry written just before the move is read for 3 s.
        let (interval, half_life) = (S / 2, S);
        let mut book = MoveBook::new(interval, half_life);
        let held = rounds_held(&mut book, interval, 20);
        let last = *held.last().unwrap();
        assert!(held.len() as u64 > MIN_HOLD_ROUNDS, "{held:?}");

        // The scenario itself: pid 7 moved from domain 0 to 1 and went to
        // sleep; its entry in domain 0's table was written when the move was
        // (at worst) carried out, one interval after it was planned.
        let slot = bpf_intf::cand_slot {
            pid: 7,
            dom: 0,
            weight: 100,
            dcycle: bpf_intf::consts_DCYCLE_ONE,
            updated_ns: interval,
            dom_mask: [u64::MAX; DOMMASK_WORDS],
        };
        let max_age = book.cand_max_age_ns();
        let empty = [];
        // While held, the old entry may still be read ...
        let seen = read_candidates(&[&[slot], &empty], last, half_life, max_age);
        assert_eq!(seen.len(), 1, "the hold ended later than needed");
        // ... and at the first round it is not held, the old entry is gone.
        let free = last + interval;
        assert!(!book.held(free).contains(&7));
        let seen = read_candidates(&[&[slot], &empty], free, half_life, max_age);
        assert!(
            seen.is_empty(),
            "pid 7 is free while still read in domain 0: {seen:?}"
        );
        // The old code's hold (three rounds from the move) ended at 1.5 s,
        // while the entry was still read.
        let old_free = MIN_HOLD_ROUNDS * interval;
        assert_eq!(
            read_candidates(&[&[slot], &empty], old_free, half_life, max_age).len(),
            1
        );
    }

    #[test]
    fn an_unapplied_move_is_dropped_and_the_task_is_free_again() {
        let mut book = MoveBook::new(S, S);
        book.planned([7, 8], 0);
        assert_eq!(book.pending(), 2);
        // Pid 8 slept through the interval: its move is taken back.
        let s = book.settle(&[8], S);
        assert_eq!(
            s,
            Settled {
                applied: 1,
                dropped: 1
            }
        );
        let held = book.held(S);
        assert!(held.contains(&7) && !held.contains(&8), "{held:?}");
        assert_eq!(book.pending(), 0);
    }

    #[test]
    fn a_pending_move_is_held_until_settled() {
        let mut book = MoveBook::new(S, S);
        book.planned([7], 0);
        // However late the next round comes, an unsettled move is held.
        assert!(book.held(100 * S).contains(&7));
        book.settle(&[], 100 * S);
        assert!(book.held(100 * S + book.hold_ns()).contains(&7));
        assert!(!book.held(100 * S + book.hold_ns() + 1).contains(&7));
    }

    #[test]
    fn moving_again_restarts_the_hold() {
        let mut book = MoveBook::new(S, S);
        book.planned([7], 0);
        book.settle(&[], S);
        let after = S + book.hold_ns() + 1;
        assert!(book.held(after).is_empty());
        book.planned([7], after);
        book.settle(&[], after + S);
        assert!(book.held(after + S + book.hold_ns()).contains(&7));
    }

    #[test]
    fn hold_follows_the_longer_of_rounds_and_age() {
        assert_eq!(MoveBook::new(S, S).hold_ns(), 3 * S);
        assert_eq!(MoveBook::new(4 * S, S).hold_ns(), 8 * S);
        assert_eq!(MoveBook::new(S / 10, 2 * S).hold_ns(), 6 * S);
    }
}
