//! `xb-cli`: the thin command-line front end of xb.

fn main() {
    println!("xb-cli: not yet implemented");
}
