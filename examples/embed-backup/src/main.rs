//! Embedding example: reads the InnoDB checkpoint of a datadir.

fn main() {
    println!("embed-backup: not yet implemented");
}
