"""One file per dock panel. Each is ``XPanel(session: Session, parent=None)`` (a QWidget) that
listens to the session's signals and redraws from ``session.result``."""
