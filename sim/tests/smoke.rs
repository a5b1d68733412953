use qamlab_sim::prelude::*;

fn scene() -> TaskScene {
    TaskScene::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../assets/tasks/cube-single.scn.ron"
    ))
    .unwrap()
}

#[test]
fn smoke() {
    let s = scene();
    let mut env = BatchedEnv::new(&s, 2, EnvOptions::default()).unwrap();
    println!("{:?}", env.spec());
    let obs = env.reset(&[1, 2]).unwrap().to_vec();
    println!("{obs:?}");
    let t = std::time::Instant::now();
    for k in 0..40 {
        let a = [0.0, 0.0, -1.0, 0.0, if k > 20 { 1.0 } else { -1.0 }].repeat(2);
        let out = env.step(&a).unwrap();
        if k % 5 == 0 {
            println!("{k}: {:?}", &out.obs[..28]);
        }
    }
    println!("{:?}", t.elapsed());
}
