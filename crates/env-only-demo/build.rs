//! stackrl's build script fetches MuJoCo and publishes its folder as
//! `DEP_STACKRL_MUJOCO_LIBDIR`; an rpath to it lets this crate's binaries run
//! without LD_LIBRARY_PATH.
fn main() {
    if let Ok(dir) = std::env::var("DEP_STACKRL_MUJOCO_LIBDIR") {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
