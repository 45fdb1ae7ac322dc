//! OverFeat's greedy merging of predicted boxes (Sermanet et al. 2014, Sect. 4.3), which the
//! paper's dense localisation applies to the boxes of every window, scale and net: "spatially
//! close predictions are merged by averaging their coordinates" and the merged box is "rated
//! based on the class scores".
//!
//! The procedure, as implemented here and in the independent reference
//! `scripts/localisation_reference.py`:
//! 1. Every box starts as its own group.
//! 2. Take the two groups whose boxes overlap most (the largest intersection over union; of
//!    equal pairs, the one whose first group comes first, then whose second does; a group's place
//!    is its first box's place in the input).
//! 3. If that overlap is below `min_iou`, stop. Otherwise join the two groups: the group's box is
//!    the mean of its members' coordinates (every input box counts once, however many joins it
//!    took part in), its score the sum of their scores. Go to 2.
//! 4. Return the groups, highest score first (equal scores: input order).
//!
//! OverFeat's own match score (the sum of the centres' distance and the boxes' intersection) has
//! no stated scale or threshold; the overlap used here is scale-free, and `min_iou` is its
//! threshold (default 0.5, the overlap the localisation error calls a hit).

use super::bbox::Rect;

/// A box and its rating (a class score, a probability, or 1 for a plain vote).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredBox {
    /// The box.
    pub rect: Rect,
    /// Its rating; merged boxes add their ratings.
    pub score: f64,
}

/// A group of merged boxes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Merged {
    /// The mean of the members' coordinates.
    pub rect: Rect,
    /// The sum of the members' scores.
    pub score: f64,
    /// How many input boxes it holds.
    pub members: usize,
}

/// A group while merging: coordinate sums, score sum, member count.
struct Group {
    sum: [f64; 4],
    score: f64,
    members: usize,
    rect: Rect,
}

impl Group {
    fn update(&mut self) {
        let n = self.members as f64;
        self.rect = Rect::new(
            self.sum[0] / n,
            self.sum[1] / n,
            self.sum[2] / n,
            self.sum[3] / n,
        );
    }
}

/// The best partner of a group among the later live groups: (overlap, index).
type Best = Option<(f64, usize)>;

fn best_after(groups: &[Group], alive: &[bool], i: usize) -> Best {
    let mut best: Best = None;
    for j in i + 1..groups.len() {
        if alive[j] {
            let v = groups[i].rect.iou(&groups[j].rect);
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, j));
            }
        }
    }
    best
}

/// Merges `boxes` greedily (see the module docs). Each step costs O(n) overlaps, plus O(n) for
/// every group whose best partner was one of the two joined.
pub fn greedy_merge(boxes: &[ScoredBox], min_iou: f64) -> Vec<Merged> {
    let mut groups: Vec<Group> = boxes
        .iter()
        .map(|b| Group {
            sum: [b.rect.x1, b.rect.y1, b.rect.x2, b.rect.y2],
            score: b.score,
            members: 1,
            rect: b.rect,
        })
        .collect();
    let n = groups.len();
    let mut alive = vec![true; n];
    let mut best: Vec<Best> = (0..n).map(|i| best_after(&groups, &alive, i)).collect();
    loop {
        // The pair with the largest overlap; ties to the smallest (i, j).
        let mut pick: Option<(f64, usize, usize)> = None;
        for i in 0..n {
            if let (true, Some((v, j))) = (alive[i], best[i])
                && pick.is_none_or(|(b, _, _)| v > b)
            {
                pick = Some((v, i, j));
            }
        }
        let Some((v, i, j)) = pick else { break };
        if v < min_iou {
            break;
        }
        let (lo, hi) = groups.split_at_mut(j);
        let (a, b) = (&mut lo[i], &hi[0]);
        for (s, t) in a.sum.iter_mut().zip(b.sum) {
            *s += t;
        }
        a.score += b.score;
        a.members += b.members;
        a.update();
        alive[j] = false;
        best[j] = None;
        best[i] = best_after(&groups, &alive, i);
        for k in 0..i {
            if !alive[k] {
                continue;
            }
            match best[k] {
                Some((_, bk)) if bk == i || bk == j => best[k] = best_after(&groups, &alive, k),
                Some((bv, bk)) => {
                    let v = groups[k].rect.iou(&groups[i].rect);
                    if v > bv || (v == bv && i < bk) {
                        best[k] = Some((v, i));
                    }
                }
                None => {}
            }
        }
        // Groups between i and j saw j as a later partner.
        for k in i + 1..j {
            if alive[k] && best[k].is_some_and(|(_, bk)| bk == j) {
                best[k] = best_after(&groups, &alive, k);
            }
        }
    }
    let mut out: Vec<Merged> = groups
        .into_iter()
        .zip(alive)
        .filter(|(_, a)| *a)
        .map(|(g, _)| Merged {
            rect: g.rect,
            score: g.score,
            members: g.members,
        })
        .collect();
    // Stable: equal scores keep input order.
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(x1: f64, y1: f64, x2: f64, y2: f64, score: f64) -> ScoredBox {
        ScoredBox {
            rect: Rect::new(x1, y1, x2, y2),
            score,
        }
    }

    #[test]
    fn close_boxes_merge_by_mean_and_far_ones_stay() {
        // A and B overlap with IoU 81/119 = 0.68; C is far away.
        let boxes = [
            sb(0.0, 0.0, 10.0, 10.0, 0.5),
            sb(50.0, 50.0, 60.0, 60.0, 2.0),
            sb(1.0, 1.0, 11.0, 11.0, 1.0),
        ];
        let m = greedy_merge(&boxes, 0.5);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].rect, Rect::new(50.0, 50.0, 60.0, 60.0));
        assert_eq!((m[0].score, m[0].members), (2.0, 1));
        assert_eq!(m[1].rect, Rect::new(0.5, 0.5, 10.5, 10.5));
        assert_eq!((m[1].score, m[1].members), (1.5, 2));
        // A threshold above 0.68 merges nothing.
        assert_eq!(greedy_merge(&boxes, 0.7).len(), 3);
    }

    #[test]
    fn a_group_is_the_mean_of_all_its_boxes() {
        // Three nested boxes: the first join takes the closest pair, then the third joins; the
        // group's box is the mean of all three, not the mean of a mean and a box.
        let boxes = [
            sb(0.0, 0.0, 12.0, 12.0, 1.0),
            sb(0.0, 0.0, 10.0, 10.0, 1.0),
            sb(0.0, 0.0, 9.0, 9.0, 1.0),
        ];
        let m = greedy_merge(&boxes, 0.5);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].members, 3);
        assert!((m[0].rect.x2 - 31.0 / 3.0).abs() < 1e-12, "{:?}", m[0]);
    }

    #[test]
    fn ties_join_the_earliest_pair() {
        // A-B and B-C have equal overlap (IoU 1/3); the pair (A, B) comes first. The merged AB
        // (0.5..2.5) against C (2..4) has IoU 0.5 / 3.5 < 0.3, so C stays alone.
        let boxes = [
            sb(0.0, 0.0, 2.0, 1.0, 1.0),
            sb(1.0, 0.0, 3.0, 1.0, 1.0),
            sb(2.0, 0.0, 4.0, 1.0, 1.0),
        ];
        let m = greedy_merge(&boxes, 0.3);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].rect, Rect::new(0.5, 0.0, 2.5, 1.0));
        assert_eq!(m[1].rect, Rect::new(2.0, 0.0, 4.0, 1.0));
    }

    #[test]
    fn empty_and_single_inputs() {
        assert!(greedy_merge(&[], 0.5).is_empty());
        let one = greedy_merge(&[sb(0.0, 0.0, 1.0, 1.0, 3.0)], 0.5);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].members, 1);
    }
}
