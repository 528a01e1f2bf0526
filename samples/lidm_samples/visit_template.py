"""The template a street fills in for its home visits (走访情况登记表): written from the contract and the
adapter, so the committed files (adapters/civil_affairs/home_visit_template/) carry the headers and
labels the feed reads.

``python -m lidm_samples.visit_template DIR`` writes 走访情况登记表.xlsx (the 走访情况 sheet first, with
drop-down lists of the labels, then 填表说明) and 走访情况登记表.csv (the header only, GBK, for a street system's
export). No personal data.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from lidm_samples.departments.civil_affairs.home_visit import HEADER, NEEDS

NAME = "走访情况登记表"
# columns whose cell is one of the contract's labels (field, header): a drop-down list in the workbook
CODED = {
    "城乡类别": "area_kind",
    "收入变化": "income_change",
    "健康状况变化": "health_change",
    "住房状况变化": "housing_change",
    "就业状况变化": "employment_change",
}
REQUIRED = ("走访记录编号", "身份证号", "姓名", "区县代码", "街道代码", "城乡类别", "走访日期", "走访人", "录入时间")
INSTRUCTIONS = (
    "走访情况登记表 填表说明",
    "1. 每人一行，填写最近一次走访的情况；家庭收入、人口、住房的变化登记在户主名下。"
    "同一人再次走访时报送新的一行，平台以新记录替换旧记录。",
    "2. 以下各列必须填写：" + "、".join(REQUIRED) + "。",
    "3. 身份证号填 18 位公民身份号码（末位 X 大写），请将该列设为文本格式，以免 Excel 改成科学计数法。",
    "4. 区县代码 6 位，街道（乡镇）代码 9 位，村（社区）代码 12 位（可不填）。",
    "5. 城乡类别、收入变化、健康状况变化、住房状况变化、就业状况变化请从下拉列表中选择。",
    "6. 家庭人均月收入（元）：走访核实的家庭月收入除以家庭人口数，填数字；无法核实的留空。"
    "家庭人口增减：增加填正数，减少填负数（如 -1），无变化填 0。",
    "7. 服务需求可填多项，用顿号分隔：" + "、".join(NEEDS.values()) + "。",
    "8. 走访情况说明只在平台加密保存，不要填写与走访无关的他人信息。",
    "9. 报送：保存为 home_visit_街道代码_日期.xlsx（或由街道系统导出同样表头的 CSV，GBK 编码），"
    "上传到报送目录，再上传同名加 .ok 的空文件表示上传完成。",
)


def template_xlsx() -> bytes:
    """The workbook: the data sheet first (the adapter reads the first sheet), instructions second."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.datavalidation import DataValidation

    from lidm.contracts.load import load_catalog

    contract = load_catalog()["civil_affairs.home_visit"]
    book = Workbook()
    sheet = book.active
    sheet.title = "走访情况"
    sheet.append(list(HEADER))  # the adapter maps these exact headers; the required ones are named in 填表说明
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for i, header in enumerate(HEADER, 1):
        letter = sheet.cell(row=1, column=i).column_letter
        sheet.column_dimensions[letter].width = max(12, 2 * len(header) + 2)
        if header in ("身份证号", "区县代码", "街道代码", "村（社区）代码", "家庭编号"):
            for row in range(2, 1002):
                sheet.cell(row=row, column=i).number_format = "@"  # text: Excel keeps every digit
        if header in CODED:
            labels = [str(label) for label in contract.field(CODED[header]).enum_labels or ()]
            check = DataValidation(type="list", formula1='"' + ",".join(labels) + '"', allow_blank=True)
            check.error, check.errorTitle = "请从下拉列表中选择", header
            sheet.add_data_validation(check)
            check.add(f"{letter}2:{letter}1001")
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("填表说明")
    for line in INSTRUCTIONS:
        notes.append([line])
    notes.column_dimensions["A"].width = 120
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template_csv() -> bytes:
    """The header line a street system's export carries, in GBK with CRLF."""
    return (",".join(HEADER) + "\r\n").encode("gbk")


def write(folder: Path) -> list[Path]:
    """Write both template files into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{NAME}.xlsx", folder / f"{NAME}.csv"]
    written[0].write_bytes(template_xlsx())
    written[1].write_bytes(template_csv())
    return written


if __name__ == "__main__":  # pragma: no cover - run by hand to refresh the committed template
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "adapters/civil_affairs/home_visit_template")):
        print(f"wrote {path}")
