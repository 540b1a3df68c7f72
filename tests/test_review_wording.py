"""What a new-user review asked for: forms whose groups share one label column, help texts that say more than
their label, a project line that says "running" during a run, and CLI errors that are true for the command used."""

FORM_PAGES = ("Data", "Teacher", "Student", "Method", "Train", "Export")


# ---- forms: one label column per form ---------------------------------------------------------------------
def _field_xs(form) -> dict[str, int]:
    """x of each shown field's editor column, in the form's coordinates."""
    return {key: f.mapTo(form, f.rect().topLeft()).x() for key, f in form.fields.items() if f.isVisible()}


def test_groups_of_a_form_start_their_fields_at_one_x(qtbot):
    from kdstudio.gui.forms import ConfigForm
    form = ConfigForm(lambda k, v: None, lambda k, m: None)
    form.add_group("Short", ["distill.alpha"])
    form.add_group("Long", ["distill.cache_teacher", "distill.epochs"])
    form.add_group("Longest", ["compress.prune_finetune_lr"])
    qtbot.addWidget(form)
    form.resize(900, 600)
    form.show()
    qtbot.waitExposed(form)
    xs = _field_xs(form)
    assert len(xs) == 4 and len(set(xs.values())) == 1, xs
    widest = max(label.natural_width() for label in form.label_column.labels)
    _, short_label = form.rows["distill.alpha"]
    assert short_label.width() >= widest  # the short label's cell is as wide as the longest label
    assert short_label.alignment() & form.rows["distill.alpha"][0].labelAlignment()  # text still to the right


def test_rows_built_again_can_share_the_column_and_leave_it(qtbot):
    from PySide6.QtWidgets import QFormLayout, QGroupBox, QLineEdit

    from kdstudio.gui.forms import ConfigForm
    form = ConfigForm(lambda k, v: None, lambda k, m: None)
    form.add_group("Method", ["distill.alpha"])
    qtbot.addWidget(form)
    base = form.label_column.width()
    box = QGroupBox("Method parameters")  # as the Method page's own parameter rows could do
    rows = QFormLayout(box)
    rows.addRow(form.label_column.label("a very long parameter name indeed"), QLineEdit())
    form.layout_.addWidget(box)
    assert form.label_column.width() > base
    rows.removeRow(0)  # deletes the label
    assert form.label_column.width() == base
    form.label_column.label("x")  # adding after a deletion is fine too
    assert form.label_column.width() == base


def test_every_form_page_lines_its_groups_up(window, qtbot):
    window.open_initial(demo=True)
    window.resize(1440, 900)
    for name in FORM_PAGES:
        window.show_page(name)
        qtbot.wait(20)
        page = window.pages[name]
        for form in page.forms() if hasattr(page, "forms") else [page.form]:
            xs = _field_xs(form)
            groups = {box.title() for box, keys in form.groups if any(k in xs for k in keys)}
            assert len(set(xs.values())) <= 1, (name, groups, xs)
