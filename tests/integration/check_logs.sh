#!/usr/bin/env bash
# The server logs of a whole integration run (tests/CMakeLists.txt keeps them)
# must not hold personal data: phone numbers, email addresses, birthdays.
# Test data uses +46 / +1 numbers, example.* addresses and birthdays in the
# 1900s; log timestamps are this century, so a 19xx date is a birthday.
set -euo pipefail
dir=${1:?usage: check_logs.sh LOG_DIR}
shopt -s nullglob
logs=("$dir"/server-*.log)
# Guard against passing vacuously: the full integration suite starts ~100
# servers; a subset (ctest -R) may start a few. None at all means the logs
# were not kept (STOREPULSE_TEST_LOG_DIR not passed to the tests).
if [ ${#logs[@]} -lt 1 ]; then
  echo "no server logs in $dir: the integration tests did not run with STOREPULSE_TEST_LOG_DIR"
  exit 1
fi
lines=$(cat "${logs[@]}" | wc -l)
patterns=(
  '\+[0-9][0-9 ]{7,}[0-9]'                              # E.164 phone, spaced or not
  '\b(46|0)7[0-9][ -]?[0-9]{3}[ -]?[0-9]{2}[ -]?[0-9]{2}\b' # Swedish mobile without +
  '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}'  # email
  '\b19[0-9]{2}-[01][0-9]-[0-3][0-9]\b'                 # a 1900s date: a birthday
  '"birthday"'
)
status=0
for p in "${patterns[@]}"; do
  if hits=$(grep -nHE -- "$p" "${logs[@]}"); then
    echo "personal data in server logs (pattern $p):"
    echo "$hits" | head -20
    status=1
  fi
done
echo "checked ${#logs[@]} server logs, $lines lines: $([ $status = 0 ] && echo 'no phones, emails or birthdays' || echo 'FOUND personal data')"
exit $status
