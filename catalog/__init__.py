"""Model files as users keep them: an index of every file (with content hashes) and the rules that find the file a
shared workflow means when its name differs (Windows separators, moved into a subfolder, no extension, renamed)."""
