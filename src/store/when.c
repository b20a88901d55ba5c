/*
 * when: the points in time the CLI accepts (log --since, report --since and
 * --until).  Calendar forms are local time.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store-int.h"

/* Local midnight of the day containing t, plus days. */
static int
local_midnight(time_t t, int days, int64_t *out)
{
	struct tm tm;
	time_t m;

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_mday += days;
	tm.tm_isdst = -1;
	if ((m = mktime(&tm)) == (time_t)-1)
		return -1;
	*out = (int64_t)m * 1000;
	return 0;
}

static int
parse_calendar(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, len = (int)strlen(s);
	time_t t;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	if (len > 10) {
		if (s[10] != 'T' && s[10] != ' ')
			return -1;
		n = 0;
		if (sscanf(s + 11, "%2d:%2d%n", &h, &mi, &n) != 2 || n != 5)
			return -1;
		if (len > 16) {
			n = 0;
			if (sscanf(s + 16, ":%2d%n", &sec, &n) != 1 || n != 3 ||
			    len != 19)
				return -1;
		}
	}
	for (n = 0; n < len; n++)
		if (!isdigit((unsigned char)s[n]) && n != 4 && n != 7 &&
		    n != 10 && n != 13 && n != 16)
			return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	if ((t = mktime(&tm)) == (time_t)-1 || tm.tm_mday != d)
		return -1;
	*out = (int64_t)t * 1000;
	return 0;
}

int
store_parse_when(const char *s, int64_t now_ms, int64_t *out)
{
	time_t now = (time_t)(now_ms / 1000);
	long long n;
	int64_t unit;
	char *end;
	size_t len = strlen(s);

	if (strcmp(s, "now") == 0) {
		*out = now_ms;
		return 0;
	}
	if (strcmp(s, "today") == 0)
		return local_midnight(now, 0, out);
	if (strcmp(s, "yesterday") == 0)
		return local_midnight(now, -1, out);
	if (len >= 2 && isdigit((unsigned char)s[0]) &&
	    strchr("dhms", s[len - 1]) != NULL &&
	    isdigit((unsigned char)s[len - 2])) {
		n = strtoll(s, &end, 10);
		if (end != s + len - 1 || n < 0 || n > 100000000LL)
			return -1;
		switch (s[len - 1]) {
		case 'd':
			unit = 86400000;
			break;
		case 'h':
			unit = 3600000;
			break;
		case 'm':
			unit = 60000;
			break;
		default:
			unit = 1000;
			break;
		}
		*out = now_ms - (int64_t)n * unit;
		return 0;
	}
	return parse_calendar(s, out);
}
