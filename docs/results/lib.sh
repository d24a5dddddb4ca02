# Sourced by docs/results/*.sh: the checkout's root, its venv's python and synthaug, and `measured`,
# which records the commit, date and cores when the run starts and rewrites the page's tables after.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/docs/results
py=${PYTHON:-$root/.venv/bin/python}
export PATH="$(dirname "$py"):$PATH"   # `synthaug` is the venv's

stamp=$("$py" "$here/tables.py" stamp)

# rewrite FAMILY RUN PAGE: record the stamp taken at the start in RUN, then rewrite PAGE's tables
rewrite() {
    "$py" "$here/tables.py" record "$2" "$stamp"
    "$py" "$here/tables.py" write "$1" "$2" "$3"
}
