//! Eviction: which entries an insert into a full cache removes, and how the live count settles
//! when that insert races other writers.

use super::counters::{excess_over, Stripe};
use super::{Policy, Removed, EXACT_BUCKETS, SAMPLE_ENTRIES};
use crate::raw::{Found, Fresh};
use crate::reclaim::Guard;
use crate::{RemovalCause, Session};

/// The `step`th bucket a sampled eviction considers for an insert of `hash`: the insert's own
/// bucket, one picked by the hash's upper half (independent of the bucket, which the low bits
/// choose), then the ones after the insert's own: the fuller of the first two and the `buckets`
/// steps after them read every bucket. Indices are reduced modulo the bucket count by the
/// table.
#[inline]
fn sampled_bucket(hash: u64, step: usize) -> usize {
    match step {
        0 => hash as usize,
        1 => (hash >> 32) as usize,
        _ => (hash as usize).wrapping_add(step - 1),
    }
}

/// One insert's eviction in progress.
struct Eviction<'a, 'g, S> {
    /// The inserting thread's stripe.
    stripe: &'a Stripe,
    /// The entry the insert made: never evicted, nor anything else under its key.
    fresh: &'a Fresh<'g, S>,
    guard: &'g Guard,
    removed: &'a mut Removed<S>,
    now: u64,
    auto_clear: bool,
    /// Entries the insert still has to remove.
    owed: usize,
    /// The insert is not counted in the live count: see [`Policy::make_room`].
    in_place: bool,
    /// The table's bucket count when the eviction began.
    buckets: usize,
    /// The next [`sampled_bucket`] step (0: none read yet).
    step: usize,
}

impl<S> Eviction<'_, '_, S> {
    /// The whole table is the sample.
    #[inline]
    fn exact(&self) -> bool {
        self.buckets <= EXACT_BUCKETS
    }
}

impl<S: Session> Policy<S> {
    /// Evicts up to `owed` entries while the cache is over `capacity`, never one cached under
    /// the key of `fresh`, the entry this insert made. An expired entry removed on the way
    /// pays for one eviction.
    ///
    /// Two rules keep an eviction from ever being needless:
    /// - **An add never evicts its own id.** The entry under that key is the one this insert
    ///   made, or a racing add's replacement of it; either way it is the session just added.
    ///   (Sparing only the exact entry this insert made let a thread evict the replacement a
    ///   racing add of the same id had just put there.)
    /// - **A live entry is evicted only after a full sample was gathered.** Expired entries met
    ///   while gathering pay first; a live victim is chosen from at least [`SAMPLE_ENTRIES`]
    ///   candidates, or from the whole table when it holds fewer. (Evicting the best entry of
    ///   each window as soon as it was read evicted a live session in a sparse table, after a
    ///   shrink, while the expired entries that would have paid sat in the next window.)
    ///
    /// And one keeps the table balanced: **the fuller bucket pays.** Keys land in buckets
    /// uniformly, so if victims were drawn whatever their bucket's load, each bucket's load
    /// would wander at random, with nothing pulling it back: after some millions of evicting
    /// adds, buckets of 0 and of 50 entries side by side (longer lookups, wider blocks, a
    /// rebuild that copies 50 slots). Taking from the fuller of two independent buckets pulls
    /// every load back to the mean (the "power of two choices"); two *neighbouring* buckets
    /// would only even out neighbours, and the loads of whole stretches of the table would
    /// still drift. Of the two, only the fuller is read: which one that is, the tag words say
    /// (claimed slots, live and dead: a block's dead slots are a few claims since its last
    /// rebuild, so they hardly blur the comparison; it balances the loads as well as counting
    /// live entries did, for one bucket's slots read instead of two). Among the buckets read
    /// after it, when it had too few entries, the one with the most live entries pays.
    ///
    /// `in_place`: the insert was not counted (it found the cache exactly full), so an eviction
    /// is not counted out either. When it cannot evict (no victim, or the cache is no longer
    /// full), it counts its own entry in instead, and from then on it is a counted insert: if
    /// counting in takes the cache over capacity, it evicts that excess too. (An add counted
    /// meanwhile found room, its entry linked after this insert read its sample, and it evicts
    /// nothing; counting in without looking again let two entries rest in a cache of one.)
    #[allow(clippy::too_many_arguments)]
    pub(super) fn make_room<'g>(
        &self,
        stripe: &Stripe,
        capacity: usize,
        owed: usize,
        in_place: bool,
        fresh: &Fresh<'g, S>,
        now: u64,
        auto_clear: bool,
        guard: &'g Guard,
        removed: &mut Removed<S>,
    ) {
        let buckets = self.table.bucket_count(guard);
        let mut ev = Eviction {
            stripe,
            fresh,
            guard,
            removed,
            now,
            auto_clear,
            owed,
            in_place,
            buckets,
            step: 0,
        };
        loop {
            while ev.owed > 0 && self.over(capacity, ev.in_place) {
                // None: nothing but this add's own id is left (or other threads evicted the
                // rest), or expired entries paid for all of it.
                let Some(victim) = self.choose_victim(&mut ev) else {
                    break;
                };
                // Reserve the eviction on the live count first, so that racing inserts together
                // evict exactly the excess (not one each for every insert they can see). An
                // in-place insert reserved it by not counting itself in.
                if !ev.in_place && !self.counters.reserve_eviction(capacity) {
                    break;
                }
                if self.take_out(&victim, RemovalCause::Evicted, guard, ev.removed) {
                    stripe.bump(&stripe.cache_full);
                    ev.owed -= 1;
                } else if !ev.in_place {
                    // Lost a race: the victim was replaced or removed after we chose it. Give
                    // the reservation back and look again: the table changed, and there may
                    // still be too many entries. (Giving up here let a cache rest above its
                    // capacity: the fuzz regression concurrent/len-over-capacity-at-rest.) Each
                    // lost race is another thread's completed write, so this stays lock-free.
                    self.counters.unreserve();
                }
            }
            if !(ev.in_place && ev.owed > 0) {
                return;
            }
            // Nothing was evicted in its place: count in, and evict what that puts over. The
            // room the stripes hold goes back to the count: so that the count says how many
            // entries there are, and so that this add sees the entries of adds that took room
            // instead of counting in (`counters` module docs, "Visibility").
            ev.in_place = false;
            let excess = excess_over(self.counters.count_in_and_drain(stripe), capacity);
            #[cfg(session_cache_mutant = "count_in_blind")]
            return;
            if excess == 0 {
                return;
            }
            ev.owed = ev.owed.min(excess);
        }
    }

    /// Whether the live count asks for an eviction: over capacity, or at it for an insert not
    /// counted in.
    #[inline]
    fn over(&self, capacity: usize, in_place: bool) -> bool {
        // The places taken, the stripes' room included: an in-place insert stole what room it
        // could see before it came here, and a counted one over capacity drained it.
        let len = self.counters.taken();
        if in_place {
            len >= capacity
        } else {
            len > capacity
        }
    }

    /// Reads the sample and returns its victim; removes the expired entries met on the way,
    /// each paying for one eviction (none once nothing is owed).
    fn choose_victim<'g>(&self, ev: &mut Eviction<'_, 'g, S>) -> Option<Found<'g, S>> {
        let mut victim: Option<Found<'g, S>> = None;
        // Live entries of the victim's bucket: in a sampled eviction the fullest bucket pays.
        let mut victim_load = 0;
        let mut candidates = 0;
        let mut looked = 0;
        // A sampled eviction may read one bucket twice before it has read them all.
        let exact = ev.exact();
        let all = if exact { ev.buckets } else { ev.buckets + 1 };
        let (fresh, guard) = (ev.fresh, ev.guard);
        // Entries ranked before this have expired (none, without auto-clear): one compare per
        // candidate.
        let cutoff = if ev.auto_clear { ev.now } else { 0 };
        let hash = fresh.hash();
        while looked < all && ev.owed > 0 && (exact || candidates < SAMPLE_ENTRIES) {
            let (start, window) = if exact {
                (0, ev.buckets)
            } else if ev.step == 0 {
                // The fuller of the two by their tag words; no slot of the other is read.
                ev.step = 2;
                let own = sampled_bucket(hash, 0);
                let other = sampled_bucket(hash, 1);
                let (a, b) = (
                    self.table.tagged_in_bucket(own, guard),
                    self.table.tagged_in_bucket(other, guard),
                );
                (if b > a { other } else { own }, 1)
            } else {
                ev.step += 1;
                (sampled_bucket(hash, ev.step - 1), 1)
            };
            for b in 0..window {
                let mut best: Option<Found<'g, S>> = None;
                let mut load = 0;
                self.table
                    .walk_bucket_while(start.wrapping_add(b), guard, |found| {
                        // Ranks are in the slots: judging a candidate reads no session.
                        if found.rank() < cutoff {
                            self.expire_in_sample(&found, ev);
                            return true;
                        }
                        load += 1;
                        let sooner = best.as_ref().map_or(true, |v| found.goes_before(v));
                        // The key comparison only for an entry that would become the victim.
                        if sooner && !found.shares_key_with(fresh) {
                            best = Some(found);
                        }
                        // A sampled bucket is read up to its first `SAMPLE_ENTRIES` live
                        // entries: slots are claimed in order and rebuilds keep that order, so
                        // those are its oldest, and the load that counts against other buckets
                        // only needs to reach the sample's size.
                        exact || load < SAMPLE_ENTRIES
                    });
                candidates += load;
                let Some(best) = best else { continue };
                let better = match &victim {
                    None => true,
                    // Exact: the soonest of the whole table.
                    Some(v) if exact => best.goes_before(v),
                    // Sampled: the fullest bucket, then the soonest.
                    Some(v) => load > victim_load || (load == victim_load && best.goes_before(v)),
                };
                if better {
                    victim = Some(best);
                    victim_load = load;
                }
            }
            looked += window;
        }
        if ev.owed == 0 {
            return None;
        }
        let victim = victim?;
        // (Only the cheap half of the rule: a key that changes while cached may read
        // differently here than when the victim was chosen.)
        debug_assert!(!victim.is(fresh), "an add evicting its own session");
        debug_assert!(
            exact || candidates >= SAMPLE_ENTRIES || looked >= all,
            "a live entry evicted from an incomplete sample"
        );
        Some(victim)
    }

    /// Removes an expired entry met while sampling; if it was still there, it pays for one
    /// eviction.
    #[cold]
    #[inline(never)]
    fn expire_in_sample(&self, found: &Found<'_, S>, ev: &mut Eviction<'_, '_, S>) {
        if !self.unlink(found, RemovalCause::Expired, ev.guard, ev.removed) {
            return;
        }
        if ev.in_place && ev.owed > 0 {
            // It was counted out in this insert's place: count this insert in.
            self.counters.count_in(ev.stripe);
            ev.in_place = false;
        }
        ev.owed = ev.owed.saturating_sub(1);
    }
}
