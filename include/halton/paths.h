/*
 * paths: where halton-meter keeps its state, and how system paths are
 * found.
 *
 * The state directory is $HALTON_METER_HOME, else ~/.halton-meter; it is
 * created 0700.  The CA directory is ~/.mitmproxy (mitmproxy-compatible).
 * Every absolute system path used for OS integration goes through
 * paths_sys(), which prefixes $HALTON_METER_SYSROOT so tests never touch the
 * real machine.  All returned strings are malloc'd; the caller frees them.
 */
#ifndef HALTON_PATHS_H
#define HALTON_PATHS_H

/* The user's home: $HOME, else the password database.  Never NULL. */
char *paths_home(void);
char *paths_state_dir(void);
/* state_dir/name */
char *paths_state_file(const char *);
/* ~/.mitmproxy */
char *paths_ca_dir(void);
/* $HALTON_METER_SYSROOT + path (path is absolute). */
char *paths_sys(const char *);
/* Creates the state directory (0700) if needed and tightens its mode if it
 * is looser.  Returns 0, or -1 with a cause the caller frees. */
int paths_ensure_state_dir(char **);
/* ~/.halton-meter/config unless $HALTON_METER_CONFIG names another. */
char *paths_config_file(void);

#endif
