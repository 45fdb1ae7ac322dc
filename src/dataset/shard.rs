//! Which shard of a dataset a process extracts: `i/N` given, or found in the scheduler's
//! environment: a Slurm job array (`SLURM_ARRAY_TASK_ID`, `..._MIN`, `..._COUNT`, `..._STEP`) or a
//! Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`). The assignment of images to shards is
//! [`super::shard_of`], a documented hash of the id, so any tool can recompute it.

use crate::error::{Error, Param, Result};

/// How the shard is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardSpec {
    /// Shard `i` of `n` (`--shard i/N`).
    Fixed(usize, usize),
    /// Index and count from a Slurm job array (`--shard auto`): index
    /// `(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP`, count
    /// `SLURM_ARRAY_TASK_COUNT`, so arrays starting at 1 (`--array=1-8`) or stepping work.
    Auto,
    /// Index from `JOB_COMPLETION_INDEX` (a Kubernetes Indexed Job), else from Slurm's array
    /// variables as for [`ShardSpec::Auto`]; count `N` (`--shard auto/N`).
    AutoOf(usize),
}

impl std::str::FromStr for ShardSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::param(
                Param::Shard,
                format!("bad shard `{s}` (expected i/N with 0 <= i < N, auto, or auto/N)"),
            )
        };
        if s == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let n: usize = n.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        if i == "auto" {
            return Ok(ShardSpec::AutoOf(n));
        }
        let i: usize = i.parse().map_err(|_| bad())?;
        if i >= n {
            return Err(bad());
        }
        Ok(ShardSpec::Fixed(i, n))
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardSpec::Fixed(i, n) => write!(f, "{i}/{n}"),
            ShardSpec::Auto => f.write_str("auto"),
            ShardSpec::AutoOf(n) => write!(f, "auto/{n}"),
        }
    }
}

impl ShardSpec {
    /// The shard `(i, N)` from the process environment.
    pub fn resolve(self) -> Result<(usize, usize)> {
        self.resolve_with(|k| std::env::var(k).ok())
    }

    /// The shard `(i, N)`, reading variables through `var` (for tests). A usage error names the
    /// variables that are missing or inconsistent.
    pub fn resolve_with(self, var: impl Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
        let num =
            |k: &str| -> Result<Option<usize>> {
                match var(k) {
                    None => Ok(None),
                    Some(v) => v.trim().parse().map(Some).map_err(|_| {
                        Error::param(Param::Shard, format!("{k}={v:?} is not a number"))
                    }),
                }
            };
        // Slurm: the task's position in its array.
        let slurm = || -> Result<Option<(usize, Option<usize>)>> {
            let Some(id) = num("SLURM_ARRAY_TASK_ID")? else {
                return Ok(None);
            };
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            if id < min || (id - min) % step != 0 {
                return Err(Error::param(
                    Param::Shard,
                    format!(
                        "SLURM_ARRAY_TASK_ID {id} is not in the array {min}, {min}+{step}, ..."
                    ),
                ));
            }
            Ok(Some(((id - min) / step, num("SLURM_ARRAY_TASK_COUNT")?)))
        };
        let (index, count) = match self {
            ShardSpec::Fixed(i, n) => return Ok((i, n)),
            ShardSpec::Auto => match slurm()? {
                Some((i, Some(n))) => (i, n),
                Some((_, None)) => {
                    return Err(Error::param(
                        Param::Shard,
                        "auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; \
                         give the count: auto/N",
                    ));
                }
                None => {
                    return Err(Error::param(
                        Param::Shard,
                        "auto: not in a Slurm job array (SLURM_ARRAY_TASK_ID and \
                         SLURM_ARRAY_TASK_COUNT are not set); in a Kubernetes Indexed Job use \
                         auto/N, elsewhere i/N",
                    ));
                }
            },
            ShardSpec::AutoOf(n) => match num("JOB_COMPLETION_INDEX")? {
                Some(i) => (i, n),
                None => match slurm()? {
                    Some((i, _)) => (i, n),
                    None => {
                        return Err(Error::param(
                            Param::Shard,
                            format!(
                                "auto/{n}: neither JOB_COMPLETION_INDEX (a Kubernetes Indexed \
                                 Job) nor SLURM_ARRAY_TASK_ID (a Slurm job array) is set; give \
                                 i/{n}"
                            ),
                        ));
                    }
                },
            },
        };
        if count == 0 || index >= count {
            return Err(Error::param(
                Param::Shard,
                format!("{self}: the scheduler says task {index} of {count}"),
            ));
        }
        Ok((index, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let v: Vec<(String, String)> = vars
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| v.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    #[test]
    fn parsing() {
        assert_eq!("2/5".parse::<ShardSpec>().unwrap(), ShardSpec::Fixed(2, 5));
        assert_eq!("auto".parse::<ShardSpec>().unwrap(), ShardSpec::Auto);
        assert_eq!("auto/4".parse::<ShardSpec>().unwrap(), ShardSpec::AutoOf(4));
        for bad in ["5/5", "1/0", "auto/0", "x/3", "auto/", "3"] {
            let e = bad.parse::<ShardSpec>().unwrap_err().to_string();
            assert!(e.contains("bad shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn slurm_arrays_from_zero_from_one_and_with_a_step() {
        let zero = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(ShardSpec::Auto.resolve_with(zero).unwrap(), (2, 3));
        // --array=1-3: task 1 is shard 0, task 3 is shard 2.
        for (id, want) in [("1", 0), ("3", 2)] {
            let one = env(&[
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ]);
            assert_eq!(ShardSpec::Auto.resolve_with(one).unwrap(), (want, 3));
        }
        // --array=10-20:5 is tasks 10, 15, 20.
        let step = env(&[
            ("SLURM_ARRAY_TASK_ID", "15"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_STEP", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(ShardSpec::Auto.resolve_with(step).unwrap(), (1, 3));
    }

    #[test]
    fn kubernetes_index_and_missing_variables() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(ShardSpec::AutoOf(4).resolve_with(k8s).unwrap(), (3, 4));
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(ShardSpec::AutoOf(4).resolve_with(slurm).unwrap(), (0, 4));
        let e = ShardSpec::Auto
            .resolve_with(env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in a Slurm job array"), "{e}");
        let e = ShardSpec::AutoOf(2)
            .resolve_with(env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither JOB_COMPLETION_INDEX"), "{e}");
        let e = ShardSpec::AutoOf(2)
            .resolve_with(env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("task 2 of 2"), "{e}");
        let e = ShardSpec::Auto
            .resolve_with(env(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a number"), "{e}");
    }
}
