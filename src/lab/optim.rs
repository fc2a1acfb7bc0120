//! Adam (Kingma & Ba, 2015) on a flat f64 parameter vector, as used by every lab experiment.

use super::exact::Vector;

/// Adam state for one parameter vector (β1 = 0.9, β2 = 0.999, ε = 1e-8, the usual defaults).
#[derive(Clone, Debug)]
pub struct Adam {
    lr: f64,
    m: Vector,
    v: Vector,
    t: i32,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    /// A fresh optimiser for `n` parameters with learning rate `lr`.
    pub fn new(n: usize, lr: f64) -> Self {
        Self {
            lr,
            m: Vector::zeros(n),
            v: Vector::zeros(n),
            t: 0,
        }
    }

    /// One descent step on `params` along -`grad` (pass -grad to ascend).
    pub fn descend(&mut self, params: &mut Vector, grad: &Vector) {
        self.t += 1;
        let c1 = 1.0 - Self::B1.powi(self.t);
        let c2 = 1.0 - Self::B2.powi(self.t);
        for i in 0..params.len() {
            let g = grad[i];
            self.m[i] = Self::B1 * self.m[i] + (1.0 - Self::B1) * g;
            self.v[i] = Self::B2 * self.v[i] + (1.0 - Self::B2) * g * g;
            let m_hat = self.m[i] / c1;
            let v_hat = self.v[i] / c2;
            params[i] -= self.lr * m_hat / (v_hat.sqrt() + Self::EPS);
        }
    }

    /// One ascent step on `params` along `grad`.
    pub fn ascend(&mut self, params: &mut Vector, grad: &Vector) {
        self.descend(params, &(-grad));
    }
}
