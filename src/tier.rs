//! The slot through which [`SessionCache`](crate::SessionCache) reaches a fleet-wide second
//! tier. With feature `redis` it is [`crate::remote`]'s; without it, an empty type whose hooks
//! are inlined no-ops, so the cache pays nothing.

#[cfg(feature = "redis")]
pub(crate) use crate::remote::hook::TierSlot;

#[cfg(not(feature = "redis"))]
pub(crate) use self::none::TierSlot;

#[cfg(not(feature = "redis"))]
mod none {
    use std::marker::PhantomData;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::policy::Policy;
    use crate::{AddError, Added, CacheMode, Session};

    pub(crate) struct TierSlot<S>(PhantomData<fn() -> S>);

    impl<S> Default for TierSlot<S> {
        fn default() -> Self {
            Self(PhantomData)
        }
    }

    impl<S: Session> TierSlot<S> {
        #[inline(always)]
        pub(crate) fn add(
            &self,
            policy: &Policy<S>,
            session: Arc<S>,
            refresh: bool,
        ) -> Result<Added, AddError> {
            policy.insert(session, refresh)
        }

        #[inline(always)]
        pub(crate) fn apply_invalidations(&self, _: &Policy<S>) {}

        #[inline(always)]
        pub(crate) fn fetch(&self, _: &Policy<S>, _: &[u8], _: CacheMode) -> Option<Arc<S>> {
            None
        }

        #[inline(always)]
        pub(crate) fn take(
            &self,
            _: &Policy<S>,
            _: &[u8],
            local: Option<Arc<S>>,
        ) -> Option<Arc<S>> {
            local
        }

        #[inline(always)]
        pub(crate) fn removed(&self, _: &Policy<S>, _: &[u8], _: Option<Duration>) {}
    }
}
