# Shell helpers for kernel modules (sourced by hooks; needs a modules.dep in MODDIR).

# kmod_closure MODDIR NAME... : print the .ko paths (relative to MODDIR) of the named modules
# and everything they depend on, sorted. Names may use - or _. Built-in or unknown modules are
# reported on stderr and skipped.
kmod_closure() {
  moddir=$1; shift
  awk -v want="$*" -v builtin="$moddir/modules.builtin" '
    BEGIN {
      n = split(want, w, /[ \t\n]+/)
      for (i = 1; i <= n; i++) if (w[i] != "") { x = w[i]; gsub("-", "_", x); W[x] = 1 }
      while ((getline line < builtin) > 0) { sub(".*/", "", line); sub("\\.ko.*$", "", line); gsub("-", "_", line); B[line] = 1 }
    }
    {
      path = $1; sub(":$", "", path)
      b = path; sub(".*/", "", b); sub("\\.ko.*$", "", b); gsub("-", "_", b)
      if (b in W) { print path; for (i = 2; i <= NF; i++) print $i; F[b] = 1 }
    }
    END { for (x in W) if (!(x in F)) print "kmod_closure: " x (x in B ? " is built into the kernel" : " not found") > "/dev/stderr" }
  ' "$moddir/modules.dep" | sort -u
}
