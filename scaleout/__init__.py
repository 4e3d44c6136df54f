"""Scale-out: run jobs on a pool of Ray workers (`python main.py --workers ray`). Imported only in that mode, so a
single-process Loom never loads Ray."""
