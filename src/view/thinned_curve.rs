//! A curve of bounded memory for a whole session: past [`MAX_POINTS`] it keeps every other point, so the plot
//! still spans the session from its first point to its newest, only more coarsely, rather than losing its start.

use egui_plot::PlotPoint;

/// Points a [`ThinnedCurve`] holds at most (a plot a few hundred pixels wide shows no more).
pub const MAX_POINTS: usize = 1024;

/// A growing series of points, thinned to at most [`MAX_POINTS`]: one pushed point in `stride` is kept, evenly
/// spaced over the whole series, and the newest always, so the curve reaches the present.
#[derive(Debug, Clone)]
pub struct ThinnedCurve {
    /// The kept points, oldest first, as egui_plot draws them (borrowed each frame, not copied); the last is the
    /// newest point pushed.
    points: Vec<PlotPoint>,
    /// Points pushed so far.
    pushed: u64,
    /// One pushed point in `stride` is kept (pushed index a multiple of it); doubles at each thinning.
    stride: u64,
    /// Whether the last point is kept only as the newest (off the stride): the next push replaces it.
    newest_off_stride: bool,
}

impl Default for ThinnedCurve {
    fn default() -> Self {
        Self {
            points: Vec::new(),
            pushed: 0,
            stride: 1,
            newest_off_stride: false,
        }
    }
}

impl ThinnedCurve {
    /// Adds the newest point, thinning the curve if it passes [`MAX_POINTS`].
    pub fn push(&mut self, point: [f64; 2]) {
        if self.newest_off_stride {
            self.points.pop();
        }
        let index = self.pushed;
        self.pushed += 1;
        self.points.push(point.into());
        self.newest_off_stride = !index.is_multiple_of(self.stride);
        if self.points.len() > MAX_POINTS {
            self.thin();
        }
    }

    /// The kept points, oldest first.
    pub fn points(&self) -> &[PlotPoint] {
        &self.points
    }

    /// Keeps every other point of the stride (the first among them) and the newest, and doubles the stride.
    fn thin(&mut self) {
        let newest = self.points.pop().expect("a curve past its cap has points");
        // The points before the newest are on the stride: the one at position i was pushed i * stride-th.
        let mut position = 0usize;
        self.points.retain(|_| {
            let keep = position.is_multiple_of(2);
            position += 1;
            keep
        });
        self.stride *= 2;
        self.points.push(newest);
        self.newest_off_stride = !(self.pushed - 1).is_multiple_of(self.stride);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Point `i` of a test series: x is the episode, y anything that tells points apart.
    fn point(i: u64) -> [f64; 2] {
        [i as f64, (i % 7) as f64 / 7.0]
    }

    #[test]
    fn a_long_session_stays_under_the_cap_from_its_first_point_to_its_newest() {
        let mut curve = ThinnedCurve::default();
        let total = 100 * MAX_POINTS as u64 + 37;
        for i in 0..total {
            curve.push(point(i));
            let points = curve.points();
            assert!(points.len() <= MAX_POINTS, "{} points", points.len());
            assert_eq!(points[0], point(0).into());
            assert_eq!(*points.last().unwrap(), point(i).into());
        }
        // Thinned, not emptied: the whole session is still drawn with at least half the cap's points.
        let points = curve.points();
        assert!(points.len() > MAX_POINTS / 2, "{} points", points.len());
        // Evenly spaced (but for the newest), in order.
        let steps: Vec<f64> = points[..points.len() - 1]
            .windows(2)
            .map(|w| w[1].x - w[0].x)
            .collect();
        assert!(steps.iter().all(|&s| s == steps[0] && s > 0.0), "{steps:?}");
        assert!(points.last().unwrap().x > points[points.len() - 2].x);
    }

    #[test]
    fn a_short_session_keeps_every_point() {
        let mut curve = ThinnedCurve::default();
        for i in 0..MAX_POINTS as u64 {
            curve.push(point(i));
        }
        let expected: Vec<PlotPoint> = (0..MAX_POINTS as u64).map(|i| point(i).into()).collect();
        assert_eq!(curve.points(), expected.as_slice());
    }
}
