// Debian's librpm (librpm-dev) for ImageAnalysis's RPM cataloger: headers plus the few helpers
// Swift cannot import (function-like macros).
#include <rpm/rpmlib.h>
#include <rpm/rpmts.h>
#include <rpm/rpmdb.h>
#include <rpm/rpmmacro.h>
#include <rpm/rpmlog.h>
#include <rpm/header.h>
#include <rpm/rpmtag.h>

/// Verify-signature flags that skip every digest and signature check: the database is read only for
/// an inventory, and an image's keyring is not ours to trust.
static inline rpmVSFlags gantry_rpm_vsflags_no_verify(void) {
    return (rpmVSFlags)(_RPMVSF_NODIGESTS | _RPMVSF_NOSIGNATURES);
}

/// Passes warnings and errors (nothing chattier) to the log callback.
static inline void gantry_rpm_log_errors_and_warnings(void) {
    rpmlogSetMask(RPMLOG_UPTO(RPMLOG_WARNING));
}
