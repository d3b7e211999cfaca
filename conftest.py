"""Repository-wide pytest configuration: stderr (warnings, progress bars) is never compared by nbval."""

try:
    from nbval.plugin import IPyNbCell
except ImportError:  # nbval not installed: nothing to configure
    IPyNbCell = None

if IPyNbCell is not None:
    _compare = IPyNbCell.compare_outputs

    def _compare_without_stderr(self, test, ref, skip_compare=None):
        def keep(outputs):
            return [o for o in outputs if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]

        return _compare(self, keep(test), keep(ref), skip_compare)

    IPyNbCell.compare_outputs = _compare_without_stderr
