//! The critic's values against the range its rewards allow: a mean Q outside it, by more than noise, is a critic
//! diverging (overestimation, mostly), long before a loss turns NaN. Said once per run.

/// The Q values a discounted sum of rewards in `[lowest, highest]` can take at `discount`: from one reward (an
/// episode that succeeds at once) to a reward at every step forever.
pub(super) fn q_bounds(lowest: f32, highest: f32, discount: f64) -> (f64, f64) {
    let forever = |r: f32| {
        let r = f64::from(r);
        if discount < 1.0 {
            r / (1.0 - discount)
        } else if r == 0.0 {
            0.0
        } else {
            r * f64::INFINITY
        }
    };
    let (lowest_r, highest_r) = (f64::from(lowest), f64::from(highest));
    (
        lowest_r.min(forever(lowest)),
        highest_r.max(forever(highest)),
    )
}

/// Says how `q_mean` lies outside `bounds` where it lies past them by more than a tenth of their width, or one
/// reward unit where that is more (a critic fitting its targets strays a little past them, and starts near 0; a
/// diverging one does not stop there).
pub(super) fn out_of_range(q_mean: f64, (low, high): (f64, f64)) -> Option<Side> {
    let slack = (0.1 * (high - low)).max(1.0);
    if q_mean > high + slack {
        Some(Side::Above)
    } else if q_mean < low - slack {
        Some(Side::Below)
    } else {
        None
    }
}

/// Which side of its range a mean Q lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// Overestimation.
    Above,
    /// Underestimation.
    Below,
}

impl Side {
    /// `above` or `below`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Side::Above => "above",
            Side::Below => "below",
        }
    }

    /// The pessimism that pulls Q back in: the target is the ensemble's mean less rho times its spread, so rho
    /// pushes Q down.
    pub(super) fn rho_remedy(self) -> &'static str {
        match self {
            Side::Above => "a larger rho (more pessimism)",
            Side::Below => "a smaller rho (less pessimism)",
        }
    }
}

/// The smallest and largest of `rewards`, or `None` for none.
pub(super) fn reward_range<'a>(rewards: impl IntoIterator<Item = &'a f32>) -> Option<(f32, f32)> {
    rewards.into_iter().fold(None, |range, &r| match range {
        None => Some((r, r)),
        Some((low, high)) => Some((low.min(r), high.max(r))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_rewards_allow_q_from_minus_one_over_one_minus_discount_to_zero() {
        let bounds = q_bounds(-1.0, 0.0, 0.99);
        assert!(
            (bounds.0 + 100.0).abs() < 1e-9 && bounds.1 == 0.0,
            "{bounds:?}"
        );
        // A tenth of the width (10) of slack either side.
        assert_eq!(out_of_range(-50.0, bounds), None);
        assert_eq!(out_of_range(9.0, bounds), None);
        assert_eq!(out_of_range(11.0, bounds), Some(Side::Above));
        assert_eq!(out_of_range(-111.0, bounds), Some(Side::Below));
        // Positive rewards: one of them at once, or every step.
        assert_eq!(q_bounds(0.5, 2.0, 0.5), (0.5, 4.0));
        // Undiscounted, a non-zero reward has no bound that way.
        assert_eq!(q_bounds(-1.0, 0.0, 1.0), (f64::NEG_INFINITY, 0.0));
        assert_eq!(out_of_range(-1e9, q_bounds(-1.0, 0.0, 1.0)), None);
        // Rewards all 0 (a dataset of successes only, or never rewarded): a critic near its start is not diverging.
        assert_eq!(out_of_range(0.9, q_bounds(0.0, 0.0, 0.99)), None);
        assert_eq!(
            out_of_range(1.1, q_bounds(0.0, 0.0, 0.99)),
            Some(Side::Above)
        );
    }

    #[test]
    fn the_reward_range_is_that_of_every_reward() {
        assert_eq!(reward_range(&[] as &[f32]), None);
        assert_eq!(reward_range(&[-1.0, 0.0, -1.0]), Some((-1.0, 0.0)));
    }
}
